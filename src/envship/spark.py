"""`envship.spark`: the Spark adapter (see :mod:`envship.engines.spark`)."""

from __future__ import annotations

from .engines.spark import *  # noqa: F403
from .engines.spark import __all__ as __all__
