"""`envship.dask`: the Dask adapter (see :mod:`envship.engines.dask`)."""

from __future__ import annotations

from .engines.dask import *  # noqa: F403
from .engines.dask import __all__ as __all__
