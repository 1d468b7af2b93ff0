"""Real Azure Blob (Azurite) and GCS (gcp-storage-emulator) servers on 127.0.0.1 for tests.

Each is a real HTTP server speaking the service's REST API; envship talks to it through adlfs
or gcsfs exactly as to the cloud, configured only by the environment variables users set.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kits.support import stop_process

__all__ = ["Emulator", "start_azurite", "start_gcs_emulator", "REPO"]

REPO = Path(__file__).resolve().parents[2]

# Azurite's well-known development account (published by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Emulator:
    """A running emulator: the environment a client (or node) needs to reach it, and a stop."""

    name: str
    endpoint: str
    environ: dict[str, str]  # what users would export: credentials + endpoint
    proc: subprocess.Popen[bytes]
    make_bucket: Callable[[str], None]
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        stop_process(self.proc)
        for fn in self.cleanups:
            fn()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(name: str, url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{name} did not start on {url}")
            time.sleep(0.1)


def azurite_bin() -> Path:
    exe = REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        pytest.fail(
            f"Azurite is not installed at {exe}: run ./scripts/test (or "
            "`source scripts/_bootstrap.sh && ensure_azurite`), which installs it with npm"
        )
    return exe


def start_azurite(workdir: Path, timeout: float = 60.0) -> Emulator:
    """Azurite's Blob service; clients find it through AZURE_STORAGE_CONNECTION_STRING."""
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(azurite_bin()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(workdir), "--silent", "--skipApiVersionCheck", "--loose",
         "--disableTelemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )
    endpoint = f"http://127.0.0.1:{port}"
    _wait("Azurite", endpoint, proc, timeout)
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )
    environ = {"AZURE_STORAGE_CONNECTION_STRING": conn}

    def make_container(name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(conn).create_container(name)

    return Emulator("azurite", endpoint, environ, proc, make_container)


class _TokenHandler(BaseHTTPRequestHandler):
    """OAuth token endpoint for the fake service account (the emulator checks no token)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "emulator-token", "expires_in": 3600,
                           "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _service_account(path: Path, token_uri: str) -> None:
    """A service-account key file: a real RSA key, so google-auth signs URLs (V4) locally."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "envship-tests", "private_key_id": "k1",
        "private_key": pem, "client_email": "envship@envship-tests.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    }))


def start_gcs_emulator(workdir: Path, timeout: float = 60.0) -> Emulator:
    """gcp-storage-emulator (in memory) plus a service account whose tokens come from a local
    endpoint; clients find both through STORAGE_EMULATOR_HOST and
    GOOGLE_APPLICATION_CREDENTIALS."""
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "gcp-storage-emulator"
    proc = subprocess.Popen(
        [str(exe), "start", "-H", "127.0.0.1", "--port", str(port), "-q", "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )
    endpoint = f"http://127.0.0.1:{port}"
    _wait("gcp-storage-emulator", endpoint, proc, timeout)
    tokens = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    key_file = workdir / "service-account.json"
    _service_account(key_file, f"http://127.0.0.1:{tokens.server_address[1]}/token")
    environ = {
        "STORAGE_EMULATOR_HOST": endpoint,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "NO_GCE_CHECK": "true",
        # gcsfs >= 2026.10 otherwise asks the gRPC storage-control API (which no emulator
        # serves) for every bucket's layout and waits 60 s for each answer.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }

    def make_bucket(name: str) -> None:
        req = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=envship-tests", method="POST",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).close()

    emu = Emulator("gcs", endpoint, environ, proc, make_bucket)
    emu.cleanups.append(tokens.shutdown)
    return emu
