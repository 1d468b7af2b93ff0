"""The store's I/O tier: where a store is (location, capabilities), the primitives every
operation uses (:class:`StoreIO`), retry and the translation of foreign errors."""

from __future__ import annotations

from .capabilities import Capabilities, capabilities_of
from .errors import DeadlinePassed, NotFound, Refused, as_store_error
from .files import Entry, StoreIO, mtime_of
from .location import Key, Scrubber, StoreLocation, open_location, parse_storage_options, redact_url
from .retry import RetryPolicy
from .transfer import TEMP_MARK

__all__ = [
    "Capabilities", "capabilities_of", "DeadlinePassed", "NotFound", "Refused",
    "as_store_error", "Entry", "StoreIO", "mtime_of", "Key", "Scrubber", "StoreLocation",
    "open_location", "parse_storage_options", "redact_url", "RetryPolicy", "TEMP_MARK",
]
