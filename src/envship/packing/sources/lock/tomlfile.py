"""Read a TOML file (tomllib on 3.11+, tomli on 3.10) with errors as PackError."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ....errors import PackError

__all__ = ["load_toml"]


def load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found]
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise PackError(f"cannot read {path}: {exc}") from exc
    return data
