"""Build the command line that starts any process inside an env, through the node runtime."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import EngineError

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
_ENV_FILE = re.compile(r"(?:^|/)envs/([0-9a-f]{64})\.json$")


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
    """The env id of *env*: from the Env, the env URI's file name, or by reading the reference."""
    if not isinstance(env, str):
        env_id = getattr(env, "env_id", None)
        if isinstance(env_id, str) and env_id:
            return env_id
        env = env_uri(env)
    match = _ENV_FILE.search(env.rstrip("/"))
    if match:
        return match.group(1)
    return _read_env_id(env)


def _read_env_id(ref: str) -> str:
    """Tag URI, manifest file or packed directory: read it to learn the env id."""
    from ..node.resolve import SCHEMAS, env_id_of

    path = ref[len("file://") :] if ref.startswith("file://") else ref
    if "://" not in path and os.path.isdir(path):
        envs = os.path.join(path, "envs")
        found = sorted(f for f in os.listdir(envs) if f.endswith(".json")) if os.path.isdir(
            envs
        ) else []
        if len(found) != 1:
            raise EngineError(
                f"{ref}: a packed directory must hold exactly one envs/<id>.json "
                f"(found {len(found)}); pass the env URI instead"
            )
        return found[0][: -len(".json")]
    try:
        if "://" in path:
            import fsspec

            with fsspec.open(ref, "rb") as fh:
                data = fh.read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
        obj = json.loads(data)
    except (OSError, ValueError) as exc:
        raise EngineError(
            f"cannot read env reference {ref}: {exc}; pass an env URI printed by `envship ship`"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("env"), str):
        return str(obj["env"])  # a tag: {"env": "<id>"}
    if not isinstance(obj, dict) or obj.get("schema") not in SCHEMAS:
        raise EngineError(
            f"{ref}: neither a tag nor an envship manifest ({' / '.join(SCHEMAS)}); pass an env "
            "URI printed by `envship ship`"
        )
    return env_id_of(obj)  # any schema: the id is the hash of the canonical JSON
