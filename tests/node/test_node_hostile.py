"""Hostile store objects (FIFO, /dev/zero, a huge sparse tag, nested JSON) give one line,
with bounded memory, from the CLI, the library and the single-file node runtime alike."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kits.nodekit import ENVSHIP, node_env

HEX = {c: c * 64 for c in "abcd"}
MEMORY_CAP = 2 << 30  # address space per process: reading /dev/zero or the sparse tag fails it


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[dict[str, Path]]:
    store = tmp_path / "store"
    (store / "envs").mkdir(parents=True)
    (store / "tags").mkdir()
    (store / "blobs" / "sha256").mkdir(parents=True)
    objs = {
        "device": store / "envs" / f"{HEX['a']}.json",  # a manifest symlinked to /dev/zero
        "fifo": store / "envs" / f"{HEX['b']}.json",
        "nested": store / "envs" / f"{HEX['c']}.json",
        "sparse": store / "tags" / "big.json",  # 20 GB, all holes
    }
    objs["device"].symlink_to("/dev/zero")
    os.mkfifo(objs["fifo"])
    objs["nested"].write_text("[" * 200_000 + "]" * 200_000)
    with open(objs["sparse"], "wb") as f:
        f.truncate(20 << 30)
    objs["store"] = store
    yield objs


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run *args* with at most MEMORY_CAP of address space: an unbounded read dies of it."""
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=node_env(),
                          preexec_fn=_cap)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("what", ["device", "fifo", "nested", "sparse"])
def test_inspect_and_exec_refuse_in_one_line(
    hostile: dict[str, Path], node_script: Path, tmp_path: Path, what: str
) -> None:
    ref = str(hostile[what])
    for args in (
        [ENVSHIP, "inspect", ref],
        [ENVSHIP, "exec", "--cache", str(tmp_path / "c"), ref, "--", "true"],
        [sys.executable, str(node_script), "--cache", str(tmp_path / "c"), ref, "--", "true"],
    ):
        line = _one_line(_run(args))
        expect = {"device": "not a regular file", "fifo": "not a regular file",
                  "nested": "nested too deeply", "sparse": "larger than"}[what]
        assert expect in line, (args, line)


def test_inspect_dev_zero_and_store_commands(hostile: dict[str, Path]) -> None:
    assert "/dev/zero" in _one_line(_run([ENVSHIP, "inspect", "/dev/zero"]))
    proc = _run([ENVSHIP, "store", "verify", str(hostile["store"])])
    damage = [line for line in proc.stdout.splitlines() if line.startswith("DAMAGE")]
    assert len(damage) == 4, proc.stdout + proc.stderr  # reported, not fatal
    proc = _run([ENVSHIP, "store", "ls", str(hostile["store"])])
    assert "Traceback" not in proc.stderr and proc.stderr.count("damaged") == 3, proc.stderr


def test_library_reads_are_bounded(hostile: dict[str, Path]) -> None:
    from envship import Env
    from envship.errors import EnvshipError

    for what in ("device", "fifo", "nested", "sparse"):
        with pytest.raises(EnvshipError) as err:
            Env.open(str(hostile[what]))
        assert "\n" not in str(err.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ONE_LINE = [
    pytest.param("exec-dead-s3", marks=pytest.mark.slow),  # botocore's own retries: ~12 s
    "exec-bad-url", "inspect-bad-url", "cache-not-dir", "secret-without-key",
]


@pytest.mark.parametrize("case", ONE_LINE)
def test_one_line_errors(tmp_path: Path, case: str) -> None:
    pytest.importorskip("s3fs")
    env_id = HEX["a"]
    dead = f"http://127.0.0.1:{_closed_port()}"
    creds = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY12", "AWS_SECRET_ACCESS_KEY": "examplesecret1"}
    args, extra, expect = {
        # an s3 env whose endpoint is down (was a 166-line EndpointConnectionError)
        "exec-dead-s3": (
            [ENVSHIP, "exec", "--cache", str(tmp_path / "c"), f"s3://bucket/envs/{env_id}.json",
             "--", "true"], {"AWS_ENDPOINT_URL": dead, **creds}, "EndpointConnectionError"),
        "exec-bad-url": (
            [ENVSHIP, "exec", "--cache", str(tmp_path / "c"),
             f"http://[::1/envs/{env_id}.json", "--", "true"], {}, "not a valid URL"),
        "inspect-bad-url": ([ENVSHIP, "inspect", f"http://[::1/envs/{env_id}.json"], {}, "[::1"),
        "cache-not-dir": ([ENVSHIP, "cache", "ls", "--cache", "/dev/null"], {},
                          "is not a directory"),
        # a secret without its key: not "no S3 credentials found"
        "secret-without-key": (
            [ENVSHIP, "store", "ls", "s3://bucket", "-s", f"endpoint_url={dead}", "-s",
             "secret=examplesecret2"], creds, "'secret' is set but 'key' is not"),
    }[case]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env=node_env(ENVSHIP_STORE_RETRY_TIMEOUT="1", **extra))
    line = _one_line(proc)
    assert expect in line, (args, line)
    assert "examplesecret" not in line


def test_no_password_in_store_errors_and_no_secret_in_a_pickled_env(tmp_path: Path) -> None:
    import pickle

    pytest.importorskip("s3fs")
    from envship import Env
    from kits.nodekit import make_small_store

    endpoint = f"http://admin:hunter2hunter2@127.0.0.1:{_closed_port()}"
    proc = subprocess.run(
        [ENVSHIP, "-v", "store", "ls", "s3://bucket", "-s", f"endpoint_url={endpoint}", "-s",
         "key=AKIAEXAMPLEKEY12", "-s", "secret=examplesecret3"],
        capture_output=True, text=True, timeout=120,
        env=node_env(ENVSHIP_STORE_RETRY_TIMEOUT="1"),
    )
    assert proc.returncode != 0
    assert "hunter2" not in proc.stderr + proc.stdout and "examplesecret3" not in proc.stderr
    store = make_small_store(tmp_path)
    env = Env.open(str(store.uri))
    secret_env = Env(env.uri, env.manifest, env.store_url, {
        "key": "AKIAEXAMPLEKEY12", "secret": "examplesecret4", "endpoint_url": endpoint,
        "client_kwargs": {"region_name": "eu-west-1", "aws_session_token": "tokentoken"},
    })
    data = pickle.dumps(secret_env)
    for secret in (b"examplesecret4", b"AKIAEXAMPLEKEY12", b"hunter2", b"tokentoken"):
        assert secret not in data
    back = pickle.loads(data)
    assert back.env_id == env.env_id
    assert dict(back.storage_options) == {
        "endpoint_url": endpoint.replace("admin:hunter2hunter2@", ""),
        "client_kwargs": {"region_name": "eu-west-1"},
    }
