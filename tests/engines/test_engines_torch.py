"""torch.distributed: two "nodes" (own node caches) start torchrun workers inside a shipped env.

Node 0 starts through the single-file node runtime (``python3 envship_node.py -- …``),
node 1 through ``envship exec -- …``, the env named by ``$ENVSHIP_ENV``; both fetch the env
into their own cache, then rendezvous on 127.0.0.1 and all_reduce with the gloo backend.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envship.engines.exec import launch
from kits.enginekit import Shipped, child_environ, free_port, run_workers, ship_venv
from kits.support import run, uv_bin

pytestmark = pytest.mark.torch

TORCH = "torch==2.13.0"  # a CPU build that pip installs from a wheel on local disk

_SCRIPT = """
    import json, os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    value = torch.tensor([float(rank + 1), 10.0 * (rank + 1)])
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:  # torchrun: it prepared the env
        launcher = f.read().decode().replace("\\0", " ")
    print(json.dumps({"rank": rank, "world": world, "sum": value.tolist(),
                      "env": os.environ["ENVSHIP_ENV_ID"], "prefix": __import__("sys").prefix,
                      "launcher": launcher, "ref": "ENVSHIP_ENV" in os.environ}),
          flush=True)
    dist.destroy_process_group()
"""


@pytest.fixture(scope="session")
def torch_env(engines_base: Path) -> Shipped:
    base = engines_base / "torch"
    venv = base / "env"
    run([uv_bin(), "venv", "-q", "--seed", "-p", sys.executable, str(venv)])
    py = venv / "bin" / "python"
    start = time.monotonic()
    # The CPU build is a wheel in pip's local wheel directory (pip's `find-links`). uv, given
    # that directory, installs it from its cache in seconds; pip unzips ~700 MB every time.
    links = _pip_find_links(py)
    installed = bool(links) and subprocess.run(
        [uv_bin(), "pip", "install", "-q", "-p", str(py),
         *[arg for link in links for arg in ("--find-links", link)], TORCH],
        capture_output=True, text=True,
    ).returncode == 0
    if not installed:
        # --no-compile: no .pyc for torch's thousands of modules (layers leave them out).
        run([str(py), "-m", "pip", "install", "-q", "--no-compile",
             "--disable-pip-version-check", TORCH])
    installed_at = time.monotonic()
    shipped = ship_venv(py, base / "store")
    print(f"torch env: installed in {installed_at - start:.1f} s, "
          f"shipped in {time.monotonic() - installed_at:.1f} s")
    return shipped


def _pip_find_links(py: Path) -> list[str]:
    """The local wheel directories pip is configured with (`find-links`, any scope)."""
    proc = subprocess.run([str(py), "-m", "pip", "config", "list"], capture_output=True,
                          text=True)
    links: list[str] = []
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.rsplit(".", 1)[-1] == "find-links":
            links += [v for v in shlex.split(value.strip().strip("'\"")) if v not in links]
    return links



def test_two_nodes_all_reduce(torch_env: Shipped, node_script: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    port = free_port()
    workers: list[tuple[list[str], dict[str, str]]] = []
    for rank in (0, 1):
        torchrun = [
            "python", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
            str(script),
        ]
        if rank == 0:
            how = launch(torch_env.uri, torchrun, node_script_path=str(node_script))
        else:
            envship = str(Path(sys.executable).parent / "envship")
            how = launch(torch_env.uri, torchrun, envship_bin=envship)
            assert how.argv[:3] == [envship, "exec", "--"]
        environ = how.environ(
            tmp_path / f"node{rank}" / "cache",
            {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"},
            base=child_environ(),
        )
        workers.append((how.argv, environ))
    outputs = run_workers(workers, tmp_path, timeout=600)
    assert sorted(o["rank"] for o in outputs) == [0, 1]
    for rank, out in enumerate(outputs):
        assert out["world"] == 2
        assert out["sum"] == [3.0, 30.0]  # (1 + 2) and (10 + 20)
        assert out["env"] == torch_env.env_id
        assert "torch.distributed.run" in out["launcher"] and not out["ref"]
        assert torch_env.uri not in out["launcher"]
        # Each "node" ran from its own cache: the env was fetched twice, once per node.
        assert out["prefix"] == str(tmp_path / f"node{rank}" / "cache" / "envs" / torch_env.env_id)
