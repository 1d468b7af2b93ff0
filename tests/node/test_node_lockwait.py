"""Bounded lock waits: a holder /proc/locks does not show (another pid namespace, overlayfs)
is waited for in the user's own 0700 area, and given up on in a shared one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from envship.node import cache, lockwait

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def unseen_holders(monkeypatch: pytest.MonkeyPatch) -> None:
    # No pid namespace or overlayfs can be set up here: /proc/locks is made to show nothing,
    # as it does for a holder in another pid namespace. The lock and its holder are real.
    monkeypatch.setattr(lockwait, "holders", lambda path: [])
    monkeypatch.setenv(lockwait.LOCK_WAIT_VAR, "0.2")


def test_private_area_waits_for_an_unseen_holder(tmp_path: Path, unseen_holders: None) -> None:
    area = tmp_path / "own"
    area.mkdir(mode=0o700)
    lock = area / "env.lock"
    holder = _hold(lock, 1.0)
    try:
        start = time.monotonic()
        fd = lockwait.acquire_bounded(str(lock))  # waits the holder out instead of giving up
        assert time.monotonic() - start > 0.3
        cache.release(fd)
    finally:
        holder.kill()
        holder.wait()


def test_shared_area_gives_up_on_an_unseen_holder(unseen_holders: None) -> None:
    # not below pytest's own 0700 folder: a shared cache is reachable by every user
    area = Path(tempfile.mkdtemp(prefix="envship-shared-", dir="/tmp"))
    area.chmod(0o1777)
    lock = area / "env.lock"
    holder = _hold(lock, 30.0)
    result: list[BaseException] = []

    def run() -> None:
        try:
            lockwait.acquire_bounded(str(lock))
        except lockwait.LockBusy as exc:
            result.append(exc)

    try:
        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        assert not t.is_alive()
        assert result and "cannot see" in str(result[0])
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(area)
