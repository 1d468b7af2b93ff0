"""Compatibility: these names moved to :mod:`envship.store` (public) and :mod:`.io`; import
them from ``envship.store``. Kept until the Spark submit code imports them from there."""

from __future__ import annotations

from .io.location import parse_storage_options, redact_url

__all__ = ["parse_storage_options", "redact_url"]
