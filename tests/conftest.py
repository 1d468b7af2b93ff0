"""Shared fixtures: real venvs built with uv from real wheels, and a sample editable project."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kits.condakit import CondaKit, cached_channel, can_build
from kits.emulators import Emulator, start_azurite, start_gcs_emulator
from kits.support import (
    AWS_ENV,
    MotoServer,
    SampleEnv,
    make_venv,
    run,
    start_moto_server,
    write_sample_project,
)

# Areas of the suite that are slow as a whole (real clusters, kill -9 loops); single slow tests
# elsewhere carry @pytest.mark.slow. `-m "not slow"` is the quick lane for everyday work.
SLOW_AREAS = (
    "engines/",  # Spark, Dask, Ray, torch.distributed and TensorFlow processes
    "remote/",  # functions run in new interpreters inside packed envs
    "store/test_store_churn.py",  # concurrent ships and gcs, kill -9
    "store/test_store_faults.py",  # injected failures with retries and back-off
    "store/test_store_teamcache.py",  # three cold ships of the sample env
    "packing/sources/test_lock_",  # envs built from locks for other targets: resolves, PEX
    "packing/test_dedup.py",  # four venvs packed cold, bytecode across interpreters
    "node/test_node_e2e.py",  # packed envs run from other environments, S3, python layer
    "store/test_store_cloud.py",  # Azurite and the GCS emulator
    "packing/test_editables.py",  # every flavour of editable install, built with uv
    "packing/test_pack_cli.py",  # the pack/inspect/diff CLI end to end
)
# Single tests of the quick areas that take over ~3 s on a quiet machine.
SLOW_TESTS = frozenset({
    "cli/test_cli_ux.py::test_missing_s3_credentials_say_where_envship_looked",
    "cli/test_cli_ux.py::test_refused_connection_fails_fast",
    "cli/test_cli_ux.py::test_sigterm_during_ship_leaves_no_temp_files",
    "cli/test_cli_ux.py::test_throttling_store_is_retried_and_said_so",
    "cli/test_cli_ux.py::test_verbose_and_quiet_after_the_command",
    "node/test_node_cache.py::test_32_concurrent_processes_download_each_layer_once",
    "node/test_node_cache.py::test_kill_9_during_unpack_leaves_nothing_usable",
    "node/test_node_conda.py::test_changed_and_stray_files_are_packed_and_reported",
    "node/test_node_conda.py::test_without_the_package_cache_the_blobs_are_the_same",
    "node/test_node_conda.py::test_stale_package_pyc_of_a_same_size_source_is_compiled",
    "node/test_node_merged.py::test_32_concurrent_starts_fetch_each_blob_once",
    "node/test_node_merged.py::test_python_layer_env_is_compiled_once_and_layers_stay_untouched",
    "packing/test_snapshot.py::test_probe_answer_reused_until_site_packages_changes",
    "packing/test_snapshot.py::test_progress_callback_reports_each_built_layer",
    "store/test_store_cli.py::test_presign_and_ls_on_s3_with_endpoint_option",
    "store/test_store_errors.py::test_unreachable_store_fails_fast_with_a_clear_error",
    # a measurement (120 blobs on moto, both ways); test_both_ways_find_... checks the result
    "store/test_store_exists.py::test_listing_vs_heads_timing",
    "store/test_store_gc.py::test_long_lived_store_sees_what_other_processes_wrote",
    "store/test_store_ship.py::test_ship_to_s3_then_run_from_a_presigned_url",
    "store/test_store_ship.py::test_ship_to_unreachable_store_fails_clearly",
    "node/test_node_exec.py::test_numpy_env_from_another_interpreter",
    "packing/test_pyc_reuse.py::test_pip_venv_with_pycs_and_uv_venv_without_give_the_same_blob",
    "packing/test_pyc_reuse.py::test_stdlib_pycs_taken_give_the_same_bytes_on_each_cpython",
})


# Fixtures parametrized by store backend ("local", "file", "memory", "s3").
BACKEND_PARAMS = ("store_url", "protocol_url")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        rel = Path(str(item.fspath)).relative_to(root).as_posix()
        test = f"{rel}::{item.name.partition('[')[0]}"
        # store tests run on local, file://, memory:// and S3: the quick lane keeps local
        params = getattr(item, "callspec", None)
        other_backend = params is not None and any(
            params.params.get(name, "local") != "local" for name in BACKEND_PARAMS)
        if (rel.startswith(SLOW_AREAS) or test in SLOW_TESTS or other_backend
                or item.get_closest_marker("spark")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sample_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleEnv]:
    """A real venv with numpy (from the index) and an editable setuptools project `mylib`.

    Shared by the whole session: tests must not modify it (copy the project if you edit it).
    """
    base = tmp_path_factory.mktemp("sample")
    project = write_sample_project(base / "mylib")
    py = make_venv(base / "venv", ["numpy"], [project])
    yield SampleEnv(base / "venv", py, project)


@pytest.fixture(scope="session")
def node_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`envship node-script` output: the single-file node runtime (tests only run it)."""
    path = tmp_path_factory.mktemp("node-script") / "envship_node.py"
    path.write_text(run([str(Path(sys.executable).parent / "envship"), "node-script"]).stdout)
    return path


@pytest.fixture(scope="session")
def conda_kit(tmp_path_factory: pytest.TempPathFactory) -> CondaKit:
    """A local conda channel of real packages built here (kits/condakit.py); kept next to the
    sessions' temp dirs, so only the first session (or a change of the kit) builds it."""
    why = can_build()
    if why is not None:
        pytest.skip(f"conda kit: {why}")
    return cached_channel(tmp_path_factory.getbasetemp().parent)


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh ENVSHIP_HOME and ENVSHIP_CACHE dirs for one test."""
    home = tmp_path / "envship-home"
    monkeypatch.setenv("ENVSHIP_HOME", str(home))
    monkeypatch.setenv("ENVSHIP_CACHE", str(tmp_path / "node-cache"))
    return home


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never let a test write to the real ~/.local/share/envship or ~/.cache/envship."""
    base = tmp_path_factory.mktemp("envship-session-home")
    old = {k: os.environ.get(k) for k in ("ENVSHIP_HOME", "ENVSHIP_CACHE")}
    os.environ["ENVSHIP_HOME"] = str(base / "home")
    os.environ["ENVSHIP_CACHE"] = str(base / "cache")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def session_build_cache(_session_home: None) -> Path:
    """The session's default build cache ($ENVSHIP_HOME/build-cache of `_session_home`)."""
    from envship.paths import build_cache_dir

    return build_cache_dir()


@contextlib.contextmanager
def _exported(values: Mapping[str, str]) -> Iterator[None]:
    """*values* set in os.environ for the block (as a user would export them), then undone."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One real moto_server (S3 API) for the whole session, AWS dummies set in the environment."""
    with _exported(AWS_ENV):
        server = start_moto_server()
        try:
            yield server
        finally:
            server.stop()


def _emulator(start: object, tmp: Path) -> Iterator[Emulator]:
    """Start an emulator, export what a user would (credentials, endpoint), undo at the end."""
    server: Emulator = start(tmp)  # type: ignore[operator]
    with _exported(server.environ):
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One real Azurite Blob server for the session (npm package, installed into .tools/)."""
    yield from _emulator(start_azurite, tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One real gcp-storage-emulator for the session, with a service account for signing."""
    yield from _emulator(start_gcs_emulator, tmp_path_factory.mktemp("gcs"))
