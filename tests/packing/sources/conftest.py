"""Fixtures for the lock builders: small pinned locks, a sample project, shared build caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from kits.buildkit import NUMPY, SIX
from kits.support import write_sample_project


@pytest.fixture(scope="session")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with requirements.txt (pinned, complete) and a sample project."""
    base = tmp_path_factory.mktemp("locks")
    (base / "requirements.txt").write_text(f"# pinned\n{NUMPY}\n{SIX}  # pure python\n")
    write_sample_project(base / "mylib", backend="hatchling")
    return base


@pytest.fixture(scope="session")
def builders_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build cache shared by the tests that do not check cold builds."""
    return tmp_path_factory.mktemp("builders-cache")
