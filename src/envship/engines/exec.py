"""The `exec` engine, which every other adapter builds on: the command line and process
environment that start any process inside an env through the node runtime (YARN containers,
Kubernetes pods, Slurm, MPI, torch.distributed and TensorFlow workers start a command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from ..env import Env, EnvRef
from ..errors import EngineError

__all__ = ["EnvRef", "NODE_SCRIPT_NAME", "command", "process_environ"]

NODE_SCRIPT_NAME = "envship_node.py"  # what `envship node-script > envship_node.py` writes


def command(
    env: EnvRef,
    argv: Sequence[str],
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    envship_bin: str | None = None,
    verbose: bool = False,
) -> list[str]:
    """The argv that runs *argv* inside *env* on a node.

    With *node_script_path* (a file written by `envship node-script`, present on the node) the
    single-file form ``python3 envship_node.py ENV -- argv…`` is used, for nodes where envship
    is not installed. With *envship_bin* (the `envship` console script on the node):
    ``envship exec ENV -- argv…``. Otherwise ``<python> -m envship.node ENV -- argv…``, the
    same runtime through an interpreter that has envship (this one by default).
    The node cache is chosen by ``$ENVSHIP_CACHE`` in the process environment.
    """
    if not argv:
        raise EngineError("no command to run inside the env: give at least the program name")
    if node_script_path is not None and envship_bin is not None:
        raise EngineError("give node_script_path or envship_bin, not both")
    uri = Env.uri_of(env)
    opts = ["--verbose"] if verbose else []
    if envship_bin is not None:
        return [envship_bin, "exec", *opts, uri, "--", *argv]
    if node_script_path is not None:
        return [python or "python3", node_script_path, *opts, uri, "--", *argv]
    return [python or sys.executable, "-m", "envship.node", *opts, uri, "--", *argv]


def process_environ(
    cache_dir: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a launcher process: *base* (os.environ) + node cache + *extra*."""
    environ = dict(os.environ if base is None else base)
    # A caller's venv must not leak into the env view: the node runtime sets its own.
    for key in ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"):
        environ.pop(key, None)
    if cache_dir is not None:
        environ["ENVSHIP_CACHE"] = os.fspath(cache_dir)
    environ.update(extra or {})
    return environ
