"""`kiosk-central`: run the central server and manage its credentials."""
from __future__ import annotations

import logging

import click

from . import db


@click.group()
@click.option("--db", "db_url", envvar="KIOSK_CENTRAL_DB", default="sqlite:///central.db",
              show_default=True, help="SQLAlchemy database URL (sqlite:///... or postgresql://...).")
@click.pass_context
def main(ctx, db_url):
    """The central server that kiosks sync their entry logs to."""
    ctx.obj = db_url


# A request's headers (token, signature, query string) fit in far less; waitress allows 256 KiB.
MAX_HEADER_BYTES = 16 * 1024
CLEANUP_INTERVAL = 5            # seconds between waitress's sweeps for idle connections


def server_options(connection_limit: int, channel_timeout: int) -> dict:
    """waitress.serve keyword arguments for the central: every limit on what a client may hold.

    :param connection_limit: connections open at once (each kiosk keeps one between batches).
    :param channel_timeout: seconds an idle connection is kept.
    """
    from .app import MAX_BODY_BYTES

    return {
        "threads": 8,
        # waitress refuses a body of max_request_body_size bytes or more, from Content-Length
        # before reading it; a chunked one once that much has arrived. One more than the app's
        # own limit, so a body the app would take is never cut short by the server.
        "max_request_body_size": MAX_BODY_BYTES + 1,
        "max_request_header_size": MAX_HEADER_BYTES,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
        "cleanup_interval": min(CLEANUP_INTERVAL, channel_timeout),
        "clear_untrusted_proxy_headers": True,
    }


def _allow_open_files(connection_limit: int) -> None:
    """Raise the soft limit on open files to what `connection_limit` needs, within the hard one:
    a waitress connection holds up to three (its socket, a spooled request and response body),
    and systemd starts services with a soft limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * connection_limit + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.option("--connection-limit", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Connections open at once; more wait in the listen queue. At least the number of kiosks.")
@click.option("--channel-timeout", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds an idle connection is kept open.")
@click.pass_obj
def serve(db_url, host, port, connection_limit, channel_timeout):
    """Serve the ingest and operator API with waitress."""
    import waitress

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _allow_open_files(connection_limit)
    waitress.serve(create_app(db_url), host=host, port=port, **server_options(connection_limit, channel_timeout))


@main.command("add-kiosk")
@click.argument("name")
@click.option("--site", required=True, help="Site the kiosk belongs to.")
@click.option("--token", help="Use this token instead of a random one.")
@click.pass_obj
def add_kiosk(db_url, name, site, token):
    """Register a kiosk; print its token (set it as sync.token on the kiosk)."""
    click.echo(db.add_credential(db.connect(db_url), name, "kiosk", site, token))


@main.command("add-operator")
@click.argument("name")
@click.option("--token", help="Use this token instead of a random one.")
@click.pass_obj
def add_operator(db_url, name, token):
    """Register an operator; print the token for the entries API."""
    click.echo(db.add_credential(db.connect(db_url), name, "operator", None, token))
