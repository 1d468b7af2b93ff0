"""`envship.ray`: the Ray adapter (see :mod:`envship.engines.ray`)."""

from __future__ import annotations

from .engines.ray import *  # noqa: F403
from .engines.ray import __all__ as __all__
