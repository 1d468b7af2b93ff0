"""What every engine adapter shares: the env reference it is given, and the command line and
process environment that start a process inside the env through the node runtime."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import EngineError, EnvshipError

__all__ = [
    "EnvLike",
    "EnvRef",
    "NODE_SCRIPT_NAME",
    "command",
    "env_uri",
    "resolve_env_id",
    "process_environ",
]

NODE_SCRIPT_NAME = "envship_node.py"  # what `envship node-script > envship_node.py` writes


class EnvLike(Protocol):
    """What an engine needs from :class:`envship.env.Env`: where the env is and what it is."""

    @property
    def uri(self) -> str: ...

    @property
    def env_id(self) -> str: ...


EnvRef = EnvLike | str


def env_uri(env: EnvRef) -> str:
    """The env reference a node runtime understands (env URI, tag URI, packed dir...)."""
    if isinstance(env, str):
        if not env:
            raise EngineError("empty env reference: pass an Env or an env URI from `envship ship`")
        return env
    uri = getattr(env, "uri", None)
    if not isinstance(uri, str) or not uri:
        raise EngineError(
            f"{env!r} is neither an Env nor an env URI: pass the result of `envship.ship()` "
            "or the URI it printed"
        )
    return uri


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
    uri = env_uri(env)
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


def resolve_env_id(env: EnvRef) -> str:
    """The env id of *env*: an :class:`Env`'s own (checked when it was opened), else read from
    the reference (env URI, tag URI, presigned URL, packed dir) and checked against it."""
    if not isinstance(env, str):
        env_id = getattr(env, "env_id", None)
        if isinstance(env_id, str) and env_id:
            return env_id
        env = env_uri(env)
    from ..env import Env

    try:
        return Env.open(env).env_id
    except EnvshipError as exc:
        raise EngineError(f"cannot read env reference {env}: {exc}") from exc
