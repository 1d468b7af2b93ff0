"""Run functions inside an env: pickled here, unpickled and called by the env's interpreter."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle

from ..errors import RemoteError, RemoteTraceback
from ..packing.manifest import Manifest
from .payload import Payload, build_payload, check_compatible, local_modules

__all__ = [
    "RemoteTraceback",
    "run",
    "map_",
    "build_payload",
    "check_compatible",
    "local_modules",
    "RUNNER",
]

T = TypeVar("T")
RUNNER = Path(__file__).with_name("_runner.py")


def _view_command(env_uri: str, cache_dir: str | None) -> tuple[list[str], dict[str, str], Path]:
    """Fetch/assemble the env on this machine: its interpreter, environment and cache root."""
    from ..node import prepare
    from ..node.cache import cache_root

    view = prepare(env_uri, cache_dir=cache_dir)
    return [view.python], view.environ(), Path(cache_root(cache_dir))


def _raise_remote(outcome: tuple[Any, ...]) -> None:
    _, pickled_exc, mod, qualname, message, tb = outcome
    exc: BaseException | None = None
    if pickled_exc is not None:
        try:
            exc = cloudpickle.loads(pickled_exc)
        except Exception:  # noqa: BLE001 - its type is not importable here
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"{mod}.{qualname}: {message}")
    raise exc from RemoteTraceback(tb)


def _execute(cmd: list[str], environ: dict[str, str], payload: Payload) -> Any:
    fd, out_path = tempfile.mkstemp(prefix="envship-result-")
    os.close(fd)
    try:
        proc = subprocess.run(
            [*cmd, str(RUNNER), out_path], input=payload.data, env=environ, check=False
        )
        data = Path(out_path).read_bytes()
        if not data:
            raise RemoteError(
                f"the env's interpreter exited with code {proc.returncode} before returning a "
                "result (see its output above)"
            )
        try:
            outcome = cloudpickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - a type of the env's that this client lacks
            raise RemoteError(
                f"the function's result could not be unpickled here ({type(exc).__name__}: "
                f"{exc}): it holds a type this client does not have; install it here, or "
                "return plain data"
            ) from exc
    finally:
        os.unlink(out_path)
    if outcome[0] == "err":
        _raise_remote(outcome)
    return outcome[1]


def run(
    env_uri: str,
    manifest: Manifest,
    func: Callable[..., T],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    cache_dir: str | None = None,
) -> T:
    """Call ``func(*args, **kwargs)`` in a fresh process inside the env; return its result.
    (The call's own arguments are *args* and *kwargs*, never this function's: a keyword
    named ``cache_dir`` is the function's.)"""
    check_compatible(manifest)  # before anything is fetched: a mismatch is refused at once
    cmd, environ, cache = _view_command(env_uri, cache_dir)
    payload = build_payload(manifest, func, (args, kwargs or {}), "call", local_cache=cache)
    return _execute(cmd, environ, payload)  # type: ignore[no-any-return]


def map_(
    env_uri: str,
    manifest: Manifest,
    func: Callable[[Any], T],
    iterable: Iterable[Any],
    *,
    processes: int | None = None,
    cache_dir: str | None = None,
) -> list[T]:
    """``[func(x) for x in iterable]`` computed by *processes* interpreters inside the env."""
    items = list(iterable)
    if not items:
        return []
    n = max(1, min(processes or os.cpu_count() or 1, len(items)))
    chunks = [items[i::n] for i in range(n)]
    check_compatible(manifest)  # before anything is fetched
    cmd, environ, cache = _view_command(env_uri, cache_dir)
    payloads = [build_payload(manifest, func, c, "map", local_cache=cache) for c in chunks]
    with ThreadPoolExecutor(n) as pool:
        parts = list(pool.map(lambda p: _execute(cmd, environ, p), payloads))
    out: list[T] = [None] * len(items)  # type: ignore[list-item]
    for i, part in enumerate(parts):
        out[i::n] = part
    return out

