"""The one exception the node runtime raises: something it could not fetch, verify or run."""

from __future__ import annotations

__all__ = ["NodeError"]


class NodeError(Exception):
    """An env could not be resolved, fetched, verified, unpacked, assembled or run on this node.

    Standard-library only, like the rest of :mod:`envship.node`; the ``envship`` CLI turns it
    into :class:`envship.errors.NodeError`.
    """
