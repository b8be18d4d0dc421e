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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.pass_obj
def serve(db_url, host, port):
    """Serve the ingest and operator API with waitress."""
    import waitress

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    waitress.serve(create_app(db_url), host=host, port=port, threads=8)


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
