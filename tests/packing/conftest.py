"""Fixtures for the core (snapshot / layers / archive / pack) tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from envship import pack
from envship.packing.pipeline import PackResult
from kits.support import SampleEnv


@pytest.fixture(scope="session")
def core_cache(session_build_cache: Path) -> Path:
    """The session's default build cache, for the core tests that want warm packs: the sample
    env packed once here is warm for every later `ship` too."""
    return session_build_cache


@pytest.fixture(scope="session")
def sample_pack(
    sample_env: SampleEnv, core_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> PackResult:
    """The session sample env packed once (cold cache) into a fresh output dir."""
    out = tmp_path_factory.mktemp("sample-pack") / "out"
    return pack(sample_env.venv, output=out, cache_dir=core_cache)
