"""A real S3-protocol server on 127.0.0.1 for the tests (moto's server mode), and a proxy in front of
it that answers 503 or drops the connection for some requests."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KEY, SECRET, REGION = "testing-key", "testing-secret", "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int, seconds: float = 60) -> bool:
    """Whether a server accepts connections on the loopback ``port`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class MotoServer:
    """``python -m moto.server`` on a free loopback port; ``env`` holds INITIAL_NO_AUTH_ACTION_COUNT
    and the like."""

    def __init__(self, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        if not listening(self.port):
            raise RuntimeError("moto server did not start")

    def client(self, service: str = "s3", key: str = KEY, secret: str = SECRET):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=REGION,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()


def objects(s3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Key (relative to ``prefix``) → bytes of every object under it."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:  # deleted since the listing (a running harvest's lock)
                continue
            found[key[len(prefix) :].lstrip("/")] = body
    return found


def open_uploads(s3, bucket: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


class FaultyProxy:
    """Forwards to ``upstream``; every ``every``-th request (0: none) gets a 503 (odd hits) or a
    dropped connection (even hits), before it reaches the server; a request for which ``refuse``
    (method, path) is true gets a 400, which no client retries."""

    def __init__(self, upstream_port: int, every: int = 0, refuse=None):
        proxy = self
        self.hits = {"requests": 0, "faults": 0, "refused": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    proxy.hits["requests"] += 1
                    refused = refuse is not None and refuse(self.command, self.path)
                    proxy.hits["refused"] += refused
                    fault = not refused and every > 0 and proxy.hits["requests"] % every == 0
                    if fault:
                        proxy.hits["faults"] += 1
                        kind = proxy.hits["faults"] % 2
                if refused:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault and kind == 1:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in (
                        "connection",
                        "transfer-encoding",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
