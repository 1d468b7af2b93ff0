"""The one exception the node runtime raises: something it could not fetch, verify or run."""

from __future__ import annotations

try:  # inside the envship package: node failures are EnvshipErrors like every other
    from ..errors import EnvshipError as _Base
    from ..errors import ManifestError as _ManifestBase
except ImportError:  # the single-file runtime (`envship node-script`) has no envship package
    _Base = Exception  # type: ignore[misc,assignment]
    _ManifestBase = Exception  # type: ignore[misc,assignment]

__all__ = ["NodeError", "ManifestInvalid"]


class NodeError(_Base):
    """An env could not be resolved, fetched, verified, unpacked, assembled or run on this node.

    Standard-library only, like the rest of :mod:`envship.node`. Inside the envship package it
    is an :class:`envship.errors.EnvshipError`, so library callers catch one exception tree.
    """


class ManifestInvalid(NodeError, _ManifestBase):
    """A manifest (or tag, or presigned manifest) that :mod:`envship.node.formats` refuses.

    Inside the envship package it is both a :class:`NodeError` and an
    :class:`envship.errors.ManifestError`: every reader refuses it with the same message.
    """
