"""How long library steps report progress (the CLI draws bars from it; the library prints
nothing): one callback shape for every step, and one for byte counts inside a transfer."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "BytesDone"]

# progress(item, done, total): a layer being archived (files), a blob being uploaded (bytes)
Progress = Callable[[str, int, int], None]

# bytes_done(n): n more bytes moved; the inner loop of one download or upload
BytesDone = Callable[[int], None]
