"""A real Azure Blob server on 127.0.0.1 for the tests: Azurite, Microsoft's emulator, installed once
per machine from npm into the user's cache (as STAC Browser is built), with its telemetry off."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stacmirror.storage import AZURITE_ACCOUNT, AZURITE_KEY

from .s3 import free_port, listening

VERSION = "3.35.0"


class Unavailable(RuntimeError):
    """Node.js or npm is missing, or npm could not install Azurite."""


def install(cache: Path) -> Path:
    """The azurite-blob command, installed under ``cache`` the first time."""
    command = cache / "node_modules" / ".bin" / "azurite-blob"
    if command.exists():
        return command
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise Unavailable("Azurite runs on Node.js and installs with npm, which are not installed")
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
            str(cache),
            f"azurite@{VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not command.exists():
        raise Unavailable(f"npm could not install azurite@{VERSION}: {done.stderr.strip()[-300:]}")
    return command


class AzuriteServer:
    """``azurite-blob`` on a free loopback port, its blobs in memory."""

    def __init__(self, command: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [str(command), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
             "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        if not listening(self.port):
            self.stop()
            raise Unavailable("Azurite did not start")

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.url}/{AZURITE_ACCOUNT};"
        )

    def objects(self, container: str, prefix: str) -> dict[str, bytes]:
        """Name (relative to ``prefix``) → bytes of every blob under it."""
        client = self.service().get_container_client(container)
        return {
            blob.name[len(prefix) :].lstrip("/"): client.download_blob(blob.name).readall()
            for blob in client.list_blobs(name_starts_with=prefix)
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()
