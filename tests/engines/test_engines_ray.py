"""Ray: a driver in a venv without numpy runs tasks that need it, through the env's runtime_env."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from envship.engines.ray import runtime_env
from kits.enginekit import (
    RAY,
    WATCH_PREPARING,
    PackedConda,
    Shipped,
    child_environ,
    client_venv,
    ship_venv,
)
from kits.support import make_venv, write_sample_project

ENV_ID = "cd" * 32
URI = f"/s/envs/{ENV_ID}.json"


def test_runtime_env_shape(tmp_path: Path) -> None:
    spec = runtime_env(URI, cache_dir=tmp_path, env_vars={"A": "1"})
    argv = shlex.split(spec["py_executable"])  # Ray runs it through `bash -c`
    # The reference is in env_vars, never in py_executable (the workers' command line).
    assert argv[1:] == ["-m", "envship.node", "--", "python"]
    assert spec["env_vars"] == {"A": "1", "ENVSHIP_CACHE": str(tmp_path), "ENVSHIP_ENV": URI}
    signed = f"https://h/s/envs/{ENV_ID}.presigned.json?X-Amz-Signature=5ec12e7"
    single = runtime_env(signed, node_script_path="/opt/my dir/envship_node.py")
    assert shlex.split(single["py_executable"]) == [
        "python3", "/opt/my dir/envship_node.py", "--", "python",
    ]
    assert single["env_vars"] == {"ENVSHIP_ENV": signed}
    # Ray writes env_vars into its workers' command lines: a 0600 file keeps the URL out.
    private = runtime_env(signed, ref_file=tmp_path / "ref")
    assert private["env_vars"] == {"ENVSHIP_ENV_FILE": str(tmp_path / "ref")}
    assert (tmp_path / "ref").read_text() == signed + "\n"
    assert (tmp_path / "ref").stat().st_mode & 0o777 == 0o600


@pytest.fixture(scope="session")
def ray_env(engines_base: Path) -> Shipped:
    base = engines_base / "ray"
    project = write_sample_project(base / "mylib")
    py = make_venv(base / "env", [RAY, "numpy"], [project])
    return ship_venv(py, base / "store")


@pytest.fixture(scope="session")
def ray_driver(engines_base: Path) -> Path:
    return client_venv(engines_base / "ray-driver", [RAY])


_DRIVER = """
    import importlib.util, json, os, sys
    import ray
    import envship.ray

    uri, cache, ref_file, conda_uri, conda_cache = sys.argv[1:6]
    assert importlib.util.find_spec("numpy") is None and importlib.util.find_spec("mylib") is None
    # Ray gives a starting raylet a fixed 30 s to register; on a loaded 2-core machine that can
    # be too short, so the head gets a few tries.
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, object_store_memory=500_000_000, include_dashboard=False,
                     log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        # Ray writes env_vars into each worker's command line: the reference goes in a file.
        spec = envship.ray.runtime_env(uri, cache_dir=cache, ref_file=ref_file)

        @ray.remote(runtime_env=spec)
        def work(n):
            import os, sys
            import numpy as np
            import mylib
            assert "ENVSHIP_ENV" not in os.environ  # the job does not see the reference
            return int(np.arange(n).sum()) + mylib.VALUE, mylib.hello(), sys.prefix

        # The workers wait while they prepare the env: their command lines then (Ray's own
        # arguments included) must not name it.
        watcher, preparing = watch_preparing(cache, 1)
        refs = [work.remote(10), work.remote(20)]
        watcher.join()
        out = {"work": ray.get(refs), "check": envship.ray.check(uri, spec),
               "preparing": list(preparing.values())}

        # a conda env (its prefix moved away): its C library, extension and activation
        @ray.remote(runtime_env=envship.ray.runtime_env(conda_uri, cache_dir=conda_cache))
        def in_conda():
            import os, subprocess, sys
            import pyfoo
            tool = subprocess.run(["foo"], capture_output=True, text=True)
            return {"prefix": sys.prefix, "answer": pyfoo.answer(), "foo": tool.stdout,
                    "FOO_DATA": os.environ.get("FOO_DATA")}

        out["conda"] = ray.get(in_conda.remote())
    finally:
        ray.shutdown()
    print(json.dumps(out))
"""


@pytest.mark.ray
def test_driver_without_numpy_runs_tasks_in_env(
    ray_env: Shipped, ray_driver: Path, tmp_path: Path, conda_env: PackedConda,
    conda_node_cache: Path,
) -> None:
    """One Ray head runs tasks in a venv env and in a conda env (both shipped elsewhere)."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(WATCH_PREPARING) + textwrap.dedent(_DRIVER))
    cache = tmp_path / "cache"
    environ = child_environ(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",  # no token file written to ~/.ray
    )
    # A session of its own: whatever Ray daemon outlives the driver is killed with its group.
    proc = subprocess.Popen(
        [str(ray_driver), str(script), ray_env.uri, str(cache), str(tmp_path / "env-ref"),
         conda_env.uri, str(conda_node_cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=environ,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, stdout + stderr[-6000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    view = str(cache / "envs" / ray_env.env_id)
    hello = "hello from mylib 1"
    assert out["work"] == [[45 + 1, hello, view], [190 + 1, hello, view]]
    assert out["check"] == ray_env.env_id
    assert out["preparing"] and all("-- python" in line for line in out["preparing"])
    assert not any(ray_env.uri in line for line in out["preparing"]), out["preparing"]
    conda_view = str(conda_node_cache / "envs" / conda_env.env_id)
    assert out["conda"] == {"prefix": conda_view, "answer": 42, "foo": "foo 42 data of libfoo\n",
                            "FOO_DATA": f"{conda_view}/share/foo"}
