"""`kiosk trust update` against a real HTTPS server on 127.0.0.1 with its own CA."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from kiosk.cli import main
from kiosk.declarations.trust import TrustList, cert_kid
from kiosk.testing import dcc_issuer as issuer

from .fixtures.tls import make_tls


def jws(payload: bytes, key) -> str:
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()   # noqa: E731
    head = enc(json.dumps({"alg": "ES256"}).encode()) + "." + enc(payload)
    r, s = decode_dss_signature(key.sign(head.encode(), ec.ECDSA(hashes.SHA256())))
    return head + "." + enc(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@pytest.fixture(scope="module")
def dscs():
    return [issuer.dsc("ES256"), issuer.dsc("PS256")]


@pytest.fixture(scope="module")
def publisher():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def https(tmp_path_factory, dscs, publisher):
    ca_bundle, context = make_tls(tmp_path_factory.mktemp("tls"))
    ders = [der for _, der in dscs]
    plain = json.dumps([base64.b64encode(d).decode() for d in ders]).encode()
    keys = [{"kid": base64.b64encode(cert_kid(d)).decode(), "x5c": [base64.b64encode(d).decode()]} for d in ders]
    swedish = json.dumps({"dsc_trust_list": {"VN": {"keys": keys}}}).encode()
    routes = {"/list.json": plain, "/signed.jws": jws(swedish, publisher).encode(),
              "/tampered.jws": jws(swedish, publisher).encode()[:-8] + b"AAAAAAAA",
              "/empty.json": b"[]", "/garbage.json": b"<html>maintenance</html>"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/vs/signercertificateUpdate":
                token = int(self.headers.get("X-RESUME-TOKEN") or 0)
                if token >= len(ders):
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-RESUME-TOKEN", str(token + 1))
                self.send_header("X-KID", base64.b64encode(cert_kid(ders[token])).decode())
                self.end_headers()
                self.wfile.write(base64.b64encode(ders[token]))
                return
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.base = f"https://127.0.0.1:{server.server_address[1]}"
    server.ca = str(ca_bundle)
    yield server
    server.shutdown()


def update(https, tmp_path, path, *extra):
    out = tmp_path / "trust.json"
    result = CliRunner().invoke(main, ["trust", "update", "--url", https.base + path, "--out", str(out),
                                       "--ca-bundle", https.ca, *extra])
    return result, out


@pytest.mark.parametrize("path", ["/list.json", "/vs/signercertificateUpdate"])
def test_plain_and_paged_lists(https, tmp_path, dscs, path):
    result, out = update(https, tmp_path, path)
    assert result.exit_code == 0, result.output
    assert "2 signer certificates" in result.output
    trust = TrustList.load(out)
    assert {cert_kid(der) for _, der in dscs} == set(trust.certificates)


def test_a_signed_list_needs_and_checks_the_publishers_key(https, tmp_path, publisher):
    key_file = tmp_path / "publisher.pem"
    key_file.write_bytes(publisher.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    result, out = update(https, tmp_path, "/signed.jws")
    assert result.exit_code == 1 and "give the publisher's key with --signer" in result.output
    assert not out.exists()
    result, out = update(https, tmp_path, "/signed.jws", "--signer", str(key_file))
    assert result.exit_code == 0 and len(TrustList.load(out)) == 2
    before = out.read_bytes()
    result, _ = update(https, tmp_path, "/tampered.jws", "--signer", str(key_file))
    assert result.exit_code == 1 and "does not verify" in result.output
    assert out.read_bytes() == before, "a failed update leaves the old list in place"


@pytest.mark.parametrize("path, message", [("/empty.json", "empty"), ("/garbage.json", "unreadable"),
                                           ("/missing.json", "answered 404")])
def test_bad_lists_keep_the_old_one(https, tmp_path, path, message):
    result, out = update(https, tmp_path, path)
    assert result.exit_code == 1 and message in result.output and not out.exists()


def test_tls_is_verified_and_plain_http_refused(https, tmp_path):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(main, ["trust", "update", "--url", https.base + "/list.json", "--out", str(out)])
    assert result.exit_code == 1 and "cannot fetch" in result.output      # our test CA is not trusted by default
    result = CliRunner().invoke(main, ["trust", "update", "--url", "http://127.0.0.1:1/list.json", "--out", str(out)])
    assert result.exit_code == 1 and "HTTPS" in result.output


def test_kiosk_verify_prints_one_json_object(https, tmp_path, dscs):
    import time

    result, out = update(https, tmp_path, "/list.json")
    key, der = dscs[1]                                                   # the PS256 signer
    now = time.time()
    payload = issuer.issue(issuer.vaccination(dt="2026-01-01"), key, der, now - 3600, now + 86400 * 30)
    result = CliRunner().invoke(main, ["verify", "--trust", str(out), payload])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["format"] == "eu-dcc" and got["status"] == "valid" and got["reasons"] == []
    assert (got["holder"], got["dob"], got["type"], got["alg"]) == (
        "Nguyễn Văn An", "1990-01-01", "vaccination", "PS256")
    assert got["kid"] == base64.b64encode(cert_kid(der)).decode()
    result = CliRunner().invoke(main, ["verify", "--cert", base64.b64encode(dscs[0][1]).decode(), payload])
    assert result.exit_code == 1 and json.loads(result.output)["reasons"] == ["unknown_signer"]
    result = CliRunner().invoke(main, ["verify", "--at", "2030-01-01T00:00:00Z", "--trust", str(out), payload])
    assert json.loads(result.output)["status"] == "expired"
