"""The shipped-client record shared by the remote tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShippedClient:
    python: Path  # the client interpreter (has envship, numpy, pandas, editable mylib)
    project: Path  # mylib's checkout
    env_uri: str  # the client env, shipped
    environ: dict[str, str]  # ENVSHIP_HOME / ENVSHIP_CACHE for scripts

    def script(self, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), str(path), *args],
            capture_output=True,
            text=True,
            env=self.environ,
            cwd=path.parent,
            timeout=300,
        )
