"""The pack options as types: what `pack()`, `ship()` and the CLI pass down to the pipeline
and the lock builder, so `mypy --strict` checks every caller's keywords."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from .sources.lock.stage import CodeArg

__all__ = ["LOCK_OPTIONS", "LockOptions", "PackOptions", "ShipOptions"]


class LockOptions(TypedDict, total=False):
    """A build from a lock file: the target and the project (see ``pack_lock``)."""

    python_version: str | None  # "3.X"; default: this interpreter's
    platform: str | None  # a wheel platform tag; default: this machine's
    strict: bool  # unpinned or incomplete requirements are errors, not warnings
    code: CodeArg  # the project of the code layer (default: the current directory's)


class PackOptions(LockOptions, total=False):
    """Everything ``pack()`` takes besides the environment itself."""

    with_python: bool
    exclude: Iterable[str]
    only: Iterable[str]
    include: Iterable[str]
    cache_dir: str | os.PathLike[str] | None
    requirements: str | os.PathLike[str] | None


class ShipOptions(PackOptions, total=False):
    """``ship()``'s pack options: the environment to pack is one of them."""

    python: str | os.PathLike[str] | None


LOCK_OPTIONS = tuple(LockOptions.__annotations__)  # python_version, platform, strict, code
