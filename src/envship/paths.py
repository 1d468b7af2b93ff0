"""Where envship keeps its own files: ``$ENVSHIP_HOME`` (build cache, default store, Spark boot
files) and ``$ENVSHIP_STORE`` (a team's default store). The node cache is the node's own
(:func:`envship.node.cache.cache_root`)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["envship_home", "build_cache_dir", "default_store_url"]


def envship_home() -> Path:
    """``$ENVSHIP_HOME``, default ``~/.local/share/envship``."""
    raw = os.environ.get("ENVSHIP_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".local" / "share" / "envship"


def build_cache_dir() -> Path:
    """The build cache of packed layers, probes, staged lock installs."""
    return envship_home() / "build-cache"


def default_store_url() -> str:
    """The store used when none is given: ``$ENVSHIP_STORE``, else ``$ENVSHIP_HOME/store``."""
    raw = os.environ.get("ENVSHIP_STORE")
    return raw if raw else str(envship_home() / "store")
