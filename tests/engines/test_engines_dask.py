"""Dask: a real scheduler and workers started from a shipped env; the client lives elsewhere."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envship.engines.dask import cli_options, worker_command, worker_launch
from envship.errors import EngineError, EnvshipError
from kits.enginekit import WATCH_PREPARING, Shipped, child_environ

pytestmark = pytest.mark.dask

ENV_ID = "ab" * 32
URI = f"/data/store/envs/{ENV_ID}.json"


def _run_client(client_py: Path, script: str, tmp_path: Path, *args: str) -> dict[str, object]:
    path = tmp_path / "client.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.run(
        [str(client_py), str(path), *args],
        capture_output=True,
        text=True,
        timeout=400,
        env=child_environ(),
        cwd=tmp_path,
    )
    if proc.returncode != 0:
        pytest.fail(f"client failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_cli_options_and_worker_command() -> None:
    assert cli_options({"nthreads": 2, "nanny": False, "dashboard": True, "x": None}) == [
        "--nthreads", "2", "--no-nanny", "--dashboard",
    ]
    assert cli_options({"resources": ["GPU=1", "MEM=2"]}) == [
        "--resources", "GPU=1", "--resources", "MEM=2",
    ]
    cmd = worker_command(URI, "tcp://10.0.0.5:8786", nthreads=4, memory_limit="2GB")
    assert cmd[1:4] == ["-m", "envship.node", URI]
    assert cmd[4:] == [
        "--", "python", "-m", "distributed.cli.dask_worker", "tcp://10.0.0.5:8786",
        "--nthreads", "4", "--memory-limit", "2GB",
    ]
    single = worker_command(URI, "tcp://h:1", node_script_path="envship_node.py")
    assert single[:3] == ["python3", "envship_node.py", URI]
    how = worker_launch(URI, "tcp://h:1", node_script_path="envship_node.py")
    assert how.argv[:3] == ["python3", "envship_node.py", "--"] and URI not in how.argv
    assert how.env_vars == {"ENVSHIP_ENV": URI}
    with pytest.raises(EngineError, match="scheduler address"):
        worker_command(URI, "")


def test_cli_dask_worker_print() -> None:
    envship = str(Path(sys.executable).parent / "envship")
    signed = f"https://h/s/envs/{ENV_ID}.presigned.json?X-Amz-Signature=5ec12e7"
    proc = subprocess.run(
        [envship, "dask-worker", "--dry-run", signed, "tcp://h:8786", "--nthreads", "3",
         "--no-nanny"],
        capture_output=True, text=True, check=True,
    )
    argv = shlex.split(proc.stdout)
    assert argv[argv.index("--") + 1 :] == [
        "python", "-m", "distributed.cli.dask_worker", "tcp://h:8786", "--nthreads", "3",
        "--no-nanny",
    ]
    # The env goes in the worker's environment, its signature redacted on screen.
    assert argv[0] == f"ENVSHIP_ENV=https://h/s/envs/{ENV_ID}.presigned.json?<signature redacted>"
    assert "5ec12e7" not in proc.stdout
    bad = subprocess.run([envship, "dask-worker", URI, ""], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "no scheduler address" in bad.stderr


_CLIENT = """
    import importlib.util, json, os, signal, subprocess, sys, time
    import envship.dask
    from envship.errors import EngineError

    uri, cache, envship_bin = sys.argv[1], sys.argv[2], sys.argv[3]
    # The client has distributed and envship, but none of the job's packages.
    assert importlib.util.find_spec("numpy") is None
    assert importlib.util.find_spec("pandas") is None
    assert importlib.util.find_spec("mylib") is None


    def work(n):
        import numpy as np
        import pandas as pd
        import mylib
        frame = pd.DataFrame({"x": np.arange(n)})
        return int(frame["x"].sum()) + mylib.VALUE, mylib.hello(), np.__version__


    def slow(i, marks):
        import os, time
        import numpy as np
        # One file per start: a task that was running on the killed worker starts twice.
        open(os.path.join(marks, f"{i}-{os.getpid()}-{time.time_ns()}"), "w").close()
        time.sleep(0.25)
        return int(np.int64(i) * 3)


    def n_workers(client):
        return len(client.scheduler_info(n_workers=-1)["workers"])


    def wait_for(client, n):
        deadline = time.monotonic() + 180
        while n_workers(client) != n:
            assert time.monotonic() < deadline, f"never saw {n} workers"
            time.sleep(0.2)


    def start(argv, **kw):
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


    out = {}
    # The scheduler and the workers wait while they prepare the env: their command lines then
    # (what every user of a node reads) must not name it.
    watcher, preparing = watch_preparing(cache, 3)
    with envship.dask.cluster(uri, n_workers=2, cache_dir=cache) as client:
        watcher.join()
        out["preparing"] = list(preparing.values())
        out["workers"] = n_workers(client)
        out["check"] = sorted(set(envship.dask.check(client, uri).values()))
        out["work"] = client.submit(work, 100).result()
        out["prefixes"] = sorted(set(client.run(lambda: sys.prefix).values()))
        out["has_ref"] = sorted(set(client.run(lambda: "ENVSHIP_ENV" in os.environ).values()))

        # `envship dask-worker` joins the cluster inside the env; a plain worker does not.
        addr = client.scheduler.address
        cli = start([envship_bin, "dask-worker", uri, addr, "--nthreads", "1", "--no-dashboard"],
                    env={**os.environ, "ENVSHIP_CACHE": cache})
        foreign = start([sys.executable, "-m", "distributed.cli.dask_worker", addr,
                         "--nthreads", "1", "--no-dashboard"])
        try:
            wait_for(client, 4)
            try:
                envship.dask.check(client, uri)
                out["error"] = None
            except EngineError as exc:
                out["error"] = str(exc)
        finally:
            for proc in (cli, foreign):
                proc.terminate()
                proc.wait(60)
        wait_for(client, 2)

        marks = os.path.join(os.getcwd(), "marks")
        os.mkdir(marks)
        futures = client.map(slow, range(40), marks=marks)
        busy = []
        deadline = time.monotonic() + 60
        while not busy and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            time.sleep(0.05)
        pids = client.run(os.getpid)
        victim = busy[0]
        os.kill(pids[victim], signal.SIGKILL)  # mid-run: the tasks it held are lost
        out["slow"] = sum(client.gather(futures))
        out["victim_gone"] = victim not in client.scheduler_info(n_workers=-1)["workers"]
        out["starts"] = len(os.listdir(marks))
    print(json.dumps(out))
"""


def test_cluster_from_env_check_cli_worker_and_worker_kill(
    dask_env: Shipped, dask_client: Path, tmp_path: Path
) -> None:
    envship_bin = str(dask_client.parent / "envship")
    cache = str(tmp_path / "cache")
    script = textwrap.dedent(WATCH_PREPARING) + textwrap.dedent(_CLIENT)
    out = _run_client(dask_client, script, tmp_path, dask_env.uri, cache, envship_bin)
    assert out["workers"] == 2
    assert out["check"] == [dask_env.env_id]
    value, hello, _np_version = out["work"]  # type: ignore[misc]
    assert value == sum(range(100)) + 1
    assert hello == "hello from mylib 1"
    # Workers run in the env view assembled in the node cache, not in the client's venv.
    assert out["prefixes"] == [str(tmp_path / "cache" / "envs" / dask_env.env_id)]
    assert out["has_ref"] == [False]  # the job does not see the reference either
    preparing = out["preparing"]
    assert len(preparing) == 3 and all("-- python -m distributed" in p for p in preparing)
    assert not any(dask_env.uri in line for line in preparing), preparing
    # check(): the CLI worker passes, the plain one is named.
    error = str(out["error"])
    assert "1 of 4 Dask workers do not run inside env" in error
    assert dask_env.env_id[:12] in error
    assert "not started by envship" in error
    # A worker killed mid-run: Dask reschedules its tasks and the job completes.
    assert out["slow"] == 3 * sum(range(40))
    assert out["victim_gone"] is True
    assert out["starts"] > 40  # what ran on the killed worker was run again elsewhere


def test_cluster_reports_a_scheduler_that_cannot_start(tmp_path: Path) -> None:
    import envship.dask

    missing = str(tmp_path / "store" / "envs" / (ENV_ID + ".json"))
    # checked first (the code-drift check opens the env): nothing is started
    with (
        pytest.raises(EnvshipError, match="not found"),
        envship.dask.cluster(missing, cache_dir=tmp_path / "cache", start_timeout=60),
    ):
        pass
    with (
        pytest.raises(EngineError, match="scheduler exited with code"),
        envship.dask.cluster(missing, cache_dir=tmp_path / "cache", start_timeout=60,
                             check_env=False),
    ):
        pass


def test_check_in_process_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """check() logic against real in-process workers: env id first, then versions."""
    import platform

    from distributed import Client, LocalCluster

    import envship.dask
    from envship.store import open_store
    from kits.storekit import make_env

    fixture = make_env(tmp_path / "blobs")
    published = open_store(str(tmp_path / "store")).publish(fixture.manifest, fixture.blobs)
    uri, env_id = published.env_uri, published.env_id

    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as local,
        Client(local) as client,
    ):
        with pytest.raises(EngineError, match=r"1 of 1 Dask workers .*\(not started by envship\)"):
            envship.dask.check(client, uri)
        monkeypatch.setenv("ENVSHIP_ENV_ID", env_id)
        assert set(envship.dask.check(client, uri).values()) == {env_id}
        # The workers report their Python through platform.python_version; fake the client's.
        monkeypatch.setattr(platform, "python_version_tuple", lambda: ("3", "99", "0"))
        with pytest.raises(EngineError, match=r"runs Python 3\.\d+ .* this client Python 3\.99"):
            envship.dask.check(client, uri)
        # an env reference whose manifest is not there is refused before asking any worker
        with pytest.raises(EnvshipError):
            envship.dask.check(client, URI)


def test_cluster_start_timeout_stops_what_it_started(dask_env: Shipped, tmp_path: Path) -> None:
    import psutil

    import envship.dask

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with (
        pytest.raises(EngineError, match="scheduler was not ready after 0s"),
        envship.dask.cluster(dask_env.uri, cache_dir=tmp_path / "cache", start_timeout=0.3),
    ):
        pass
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left  # scheduler and workers were stopped on the way out
