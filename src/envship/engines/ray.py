"""Ray: a ``runtime_env`` whose workers start inside an env, through the node runtime."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

from ..drift import require_code_match
from ..env import Env
from ..errors import EngineError
from .exec import EnvRef, launch

__all__ = ["runtime_env", "check"]


def runtime_env(
    env: EnvRef,
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    env_vars: Mapping[str, str] | None = None,
    ref_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """A Ray ``runtime_env`` dict that starts each Python worker inside *env*.

    Ray runs ``<py_executable> default_worker.py …`` through ``bash -c``; here py_executable
    is the node runtime followed by ``-- python``, so the worker's interpreter is the env
    view's. The env reference goes in ``env_vars`` (``ENVSHIP_ENV``), never in py_executable,
    which becomes the workers' command line (a presigned URL there is readable by every user).
    Ray itself also writes ``env_vars`` into each worker's command line while it starts
    (``--serialized-runtime-env-context``): with *ref_file* (a path every node of the cluster
    reaches as the same user, e.g. on a shared home), the reference is written there, mode
    0600, and only that path goes in ``env_vars`` (``ENVSHIP_ENV_FILE``).
    The env must contain ``ray`` itself, at the cluster's version. On nodes without envship,
    pass *node_script_path* (where ``envship_node.py`` lies on every node). *cache_dir* sets
    ``ENVSHIP_CACHE`` for the workers. Merge the result with your own runtime_env keys.
    """
    how = launch(env, ["python"], node_script_path=node_script_path, python=python)
    if ref_file is not None:
        how = how.with_ref_file(ref_file)
    variables = dict(env_vars or {})
    if cache_dir is not None:
        variables["ENVSHIP_CACHE"] = os.fspath(cache_dir)
    variables.update(how.env_vars)
    return {"py_executable": shlex.join(how.argv), "env_vars": variables}


def check(
    env: EnvRef,
    spec: Mapping[str, Any] | None = None,
    *,
    timeout: float = 300.0,
    storage_options: Mapping[str, Any] | None = None,
    check_code: bool = True,
) -> str:
    """Run one task with *spec* (default :func:`runtime_env`) and check it runs inside *env*
    (read with *storage_options*); with *check_code*, first compare the local code with the
    env's code layers (edited but not re-shipped: EngineError). Needs a connected Ray
    (``ray.init()``). Returns the env id; raises EngineError otherwise.
    """
    opened = Env.coerce(env, storage_options)
    if check_code:
        require_code_match(opened)
    expected = opened.env_id
    try:
        import ray
    except ImportError as exc:
        raise EngineError("envship.ray.check needs `ray` in this Python: pip install ray") from exc
    task = ray.remote(os.getenv).options(runtime_env=dict(spec or runtime_env(env)))
    try:
        got = ray.get(task.remote("ENVSHIP_ENV_ID"), timeout=timeout)
    except Exception as exc:  # Ray raises many kinds here; all mean the env did not start
        raise EngineError(
            f"a Ray task with the env's runtime_env failed ({type(exc).__name__}: {exc}); "
            "check that the env contains ray at the cluster's version"
        ) from exc
    if got != expected:
        raise EngineError(
            f"a Ray worker ran in {('env ' + str(got)[:12]) if got else 'no envship env'}, "
            f"not in env {expected[:12]}: pass envship.ray.runtime_env(env) as runtime_env"
        )
    return expected
