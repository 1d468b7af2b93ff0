"""envship: ship a Python environment and its code to a cluster as content-addressed layers."""

from __future__ import annotations

from .errors import EnvshipError
from .manifest import Manifest

__all__ = ["EnvshipError", "Manifest", "__version__"]
__version__ = "0.1.0"
