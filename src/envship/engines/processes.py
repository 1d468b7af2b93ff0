"""Local processes that engine adapters start (Spark JVMs, Dask scheduler and workers): free
ports on a host, and signals to a whole process group."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess

__all__ = ["free_port", "signal_group"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on *host* (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send *sig* to the process group *proc* leads (started with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
