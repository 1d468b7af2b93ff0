"""Exception hierarchy: every failure a user can act on is an ``EnvshipError``.

The node runtime's :class:`envship.node.errors.NodeError` is one too (it lives with the
stdlib-only node package, which also runs without envship installed)."""

from __future__ import annotations

__all__ = [
    "EnvshipError",
    "SnapshotError",
    "PackError",
    "ManifestError",
    "StoreError",
    "EnvNotFound",
    "EngineError",
    "RemoteError",
    "RemoteTraceback",
]


class EnvshipError(Exception):
    """Base class; the CLI prints the message in one or two lines and exits non-zero."""


class SnapshotError(EnvshipError):
    """The target environment cannot be read (not a venv, python not runnable, bad metadata)."""


class PackError(EnvshipError):
    """A layer could not be built or written (unreadable file, unwritable output dir)."""


class ManifestError(EnvshipError):
    """A manifest is missing, damaged, of an unknown schema, or does not match its env id."""


class StoreError(EnvshipError):
    """A store could not be read or written (auth, not found, unreachable, corrupt blob)."""


class EnvNotFound(StoreError):
    """The store holds no manifest for this env id (never shipped there, or collected)."""


class EngineError(EnvshipError):
    """An engine adapter (Spark, Dask, Ray, YARN) could not start or check the env."""


class RemoteError(EnvshipError):
    """A function could not be shipped to, or run inside, an env."""


class RemoteTraceback(Exception):
    """The traceback text of an exception raised inside an env by ``Env.run`` / ``Env.map``:
    the ``__cause__`` of the exception re-raised here (not an envship failure itself)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n\n{self.tb}"
