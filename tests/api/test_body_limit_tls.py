"""Issue 13 findings 5 and 8: a huge body never grows the process; HTTPS from `linkcall serve`.

Both against the real `linkcall serve` (uvicorn) in its own process, so the RSS measured is the
server's alone.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.api.serve_process import Served, serve

CLAIMED = 400 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)


def _stream_post(served: Served, *, chunked: bool, token: str | None = None) -> tuple[int, bytes]:
    """POST a 400 MB body to /api/v1/bridges, 1 MiB at a time, until the server answers or
    closes; return (status, body). Deadline 120 s."""
    head = [
        "POST /api/v1/bridges HTTP/1.1",
        f"Host: {served.host}:{served.port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {CLAIMED}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    sock = socket.create_connection((served.host, served.port), timeout=30)
    deadline = time.monotonic() + 120
    received = b""
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        while sent < CLAIMED and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            piece = (b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n") if chunked else CHUNK
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        sock.settimeout(max(1.0, deadline - time.monotonic()))
        while b"\r\n\r\n" not in received or len(received) < _expected_len(received):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    finally:
        sock.close()
    head_bytes, _, body = received.partition(b"\r\n\r\n")
    assert head_bytes, "the server sent no response"
    status = int(head_bytes.split(b" ", 2)[1])
    return status, body


def _expected_len(received: bytes) -> int:
    head, sep, _ = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + len(sep) + int(value)
    return 1 << 62


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serve(tmp_path) as s:
        yield s


@pytest.mark.timeout(300)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_400mb_body_gets_413_and_rss_stays_flat(served: Served, chunked: bool) -> None:
    # warm up: the first requests import and cache what a request needs
    for _ in range(3):
        httpx.post(f"{served.base_url}/api/v1/bridges", json={}, timeout=10)
    before = served.rss_bytes()
    status, body = _stream_post(served, chunked=chunked)
    grown = served.rss_bytes() - before
    assert status == 413
    problem = json.loads(body)
    assert problem["status"] == 413 and problem["type"].endswith("/too-large")
    assert problem["max_bytes"] == 10 * 1024 * 1024
    # the old server read all of it (RSS 101 MB → 1.33 GB); at most the 10 MiB limit may be held
    assert grown < 24 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB"
    # and the service still answers
    assert httpx.get(f"{served.base_url}/healthz", timeout=10).status_code == 200


@pytest.mark.timeout(300)
def test_body_limit_applies_with_a_token_and_is_configurable(tmp_path: Path) -> None:
    with serve(tmp_path, LINKCALL_HTTP_MAX_BODY_BYTES="65536") as s:
        status, body = _stream_post(s, chunked=True, token=s.admin_token)
        assert status == 413 and json.loads(body)["max_bytes"] == 65536
        small = httpx.post(
            f"{s.base_url}/api/v1/units",
            json={"code": "U01", "name": "县供电公司", "kind": "linkage"},
            headers={"Authorization": f"Bearer {s.admin_token}"},
            timeout=10,
        )
        assert small.status_code == 201


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.timeout(180)
def test_serve_speaks_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with serve(tmp_path, tls_ca=cert, LINKCALL_TLS_CERT=str(cert), LINKCALL_TLS_KEY=str(key)) as s:
        ctx = ssl.create_default_context(cafile=str(cert))
        me = httpx.get(
            f"{s.base_url}/api/v1/me",
            headers={"Authorization": f"Bearer {s.admin_token}"},
            verify=ctx,
            timeout=10,
        )
        assert me.status_code == 200 and me.json()["role"] == "admin"
        # the certificate served is the configured one
        with socket.create_connection((s.host, s.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # plain HTTP on the same port gets no API answer
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{s.port}/healthz", timeout=5)


def test_tls_settings_must_come_in_pairs(tmp_path: Path) -> None:
    from api.settings import Settings

    cert, _ = _self_signed(tmp_path)
    with pytest.raises(ValueError, match="both LINKCALL_TLS_CERT and LINKCALL_TLS_KEY"):
        Settings(tls_cert=cert)
    with pytest.raises(ValueError, match="missing file"):
        Settings(tls_cert=cert, tls_key=tmp_path / "nope.pem")
