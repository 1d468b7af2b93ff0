"""Test helpers: build real venvs with uv, write sample projects, run commands."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST_PYTHON = sys.executable


def uv_bin() -> str:
    """uv from the test venv (installed with the test extras), else from PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    found = shutil.which("uv")
    if not found:
        pytest.fail("uv is not installed: run ./scripts/test, which installs it")
    return found


def cpython_versions() -> list[str]:
    """One interpreter per CPython 3.10-3.13 found on this machine (pyenv's, else on PATH)."""
    found = []
    for minor in (10, 11, 12, 13):
        cands = sorted(Path("/root/.pyenv/versions").glob(f"3.{minor}.*/bin/python3.{minor}"))
        exe = shutil.which(f"python3.{minor}")
        if cands:
            found.append(str(cands[-1]))
        elif exe and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0:
            found.append(exe)
    return found


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {cmd}\n{proc.stdout}\n{proc.stderr}")
    return proc  # type: ignore[no-any-return]


def make_venv(
    path: Path, packages: Sequence[str] = (), editable: Sequence[Path] = ()
) -> Path:
    """Create a venv at *path* with uv and install *packages* (+ *editable* projects) into it."""
    run([uv_bin(), "venv", "-q", "--seed", "-p", HOST_PYTHON, str(path)])
    py = path / "bin" / "python"
    args: list[str] = list(packages)
    for proj in editable:
        args += ["-e", str(proj)]
    if args:
        run([uv_bin(), "pip", "install", "-q", "-p", str(py), *args])
    return py


def write_sample_project(root: Path, name: str = "mylib", backend: str = "setuptools") -> Path:
    """A small installable project `name` with a module, a data value and a console script."""
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / "src" / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            f'''\
            """Sample package used by envship's tests."""
            VALUE = 1


            def hello() -> str:
                return "hello from {name} %d" % VALUE


            def main() -> None:
                print(hello())
            '''
        )
    )
    (pkg / "extra.py").write_text("def double(x):\n    return 2 * x\n")
    if backend == "setuptools":
        build = (
            '[build-system]\nrequires = ["setuptools>=64"]\n'
            'build-backend = "setuptools.build_meta"\n'
        )
    elif backend == "hatchling":
        build = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    else:
        raise ValueError(backend)
    hatch_cfg = f'\n[tool.hatch.build.targets.wheel]\npackages = ["src/{name}"]\n'
    (root / "pyproject.toml").write_text(
        build
        + textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            version = "0.1.0"

            [project.scripts]
            {name}-hello = "{name}:main"
            """
        )
        + (hatch_cfg if backend == "hatchling" else "")
    )
    (root / ".gitignore").write_text("*.log\nscratch/\n")
    return root


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class SampleEnv:
    venv: Path  # the venv prefix
    python: Path  # its interpreter
    project: Path  # the editable project's root


@dataclass(frozen=True)
class MotoServer:
    """A real S3 API (moto_server) on 127.0.0.1; talk to it with s3fs + `endpoint_url`."""

    endpoint: str
    proc: subprocess.Popen[bytes]

    def storage_options(self) -> dict[str, object]:
        return {"endpoint_url": self.endpoint}

    def new_bucket(self) -> str:
        """Create a bucket of a fresh name on this server; its name."""
        import s3fs

        name = f"b-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=self.endpoint, skip_instance_cache=True).mkdir(name)
        return name

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by a fixture; kill it if it has not gone in 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_moto_server(timeout: float = 30.0) -> MotoServer:
    """Start `moto_server` on a free port and wait until it answers.

    Callers set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummies) and AWS_DEFAULT_REGION in
    the environment, and call `.stop()` at the end.
    """
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return MotoServer(endpoint, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on {endpoint}")
            time.sleep(0.1)


@functools.cache
def suite_tmp() -> str:
    """$TMPDIR for the envship runs of the suite: a node cache's fallback area
    ($TMPDIR/envship-<uid>) that earlier runs left on this machine is never theirs, and
    `cache ls`/`prune` count only what the tests made. Removed when the suite ends."""
    path = tempfile.mkdtemp(prefix="envship-suite-tmp-")
    atexit.register(shutil.rmtree, path, True)
    return path
