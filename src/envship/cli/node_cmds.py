"""CLI commands: node."""

from __future__ import annotations

from . import app  # noqa: F401

__all__: list[str] = []
