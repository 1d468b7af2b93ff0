"""`envship.yarn`: the Yarn adapter (see :mod:`envship.engines.yarn`)."""

from __future__ import annotations

from .engines.yarn import *  # noqa: F403
from .engines.yarn import __all__ as __all__
