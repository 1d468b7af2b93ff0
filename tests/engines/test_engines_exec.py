"""The exec adapter: the command line that starts a process inside an env, in both forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envship.engines.exec import command, launch, process_environ
from envship.env import Env
from envship.errors import EngineError, EnvshipError
from envship.store import open_store
from kits.enginekit import Shipped, child_environ, ship_venv
from kits.storekit import make_env
from kits.support import SampleEnv

ENV_ID = "0f" * 32


def test_command_forms() -> None:
    uri = f"s3://b/envs/{ENV_ID}.json"
    assert command(uri, ["python", "job.py"]) == [
        sys.executable, "-m", "envship.node", uri, "--", "python", "job.py",
    ]
    assert command(uri, ["x"], node_script_path="/opt/envship_node.py", verbose=True) == [
        "python3", "/opt/envship_node.py", "--verbose", uri, "--", "x",
    ]
    assert command(uri, ["x"], node_script_path="n.py", python="/usr/bin/python3.9")[0] == (
        "/usr/bin/python3.9"
    )
    assert command(uri, ["x"], envship_bin="/opt/bin/envship") == [
        "/opt/bin/envship", "exec", uri, "--", "x",
    ]
    with pytest.raises(EngineError, match="not both"):
        command(uri, ["x"], envship_bin="envship", node_script_path="n.py")
    with pytest.raises(EngineError, match="no command"):
        command(uri, [])
    with pytest.raises(EnvshipError, match="neither an Env nor an env URI"):
        command(42, ["x"])  # type: ignore[arg-type]
    assert command(Path("/s/envs/x.json"), ["x"])[3] == "/s/envs/x.json"


def test_a_command_string_is_an_error_not_its_letters() -> None:
    import envship.dask

    with pytest.raises(EngineError, match="is a string: give a list of arguments"):
        launch(f"/s/envs/{ENV_ID}.json", "python train.py")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="extra_args '--foo' is a string"):
        envship.dask.worker_launch(f"/s/envs/{ENV_ID}.json", "tcp://h:8786",
                                   extra_args="--foo")  # type: ignore[arg-type]


def test_launch_keeps_the_reference_off_the_command_line() -> None:
    signed = f"https://h/s/envs/{ENV_ID}.presigned.json?X-Amz-Signature=5ec12e7"
    for how in (launch(signed, ["python", "job.py"]),
                launch(signed, ["x"], node_script_path="/opt/envship_node.py", verbose=True),
                launch(signed, ["x"], envship_bin="/opt/bin/envship")):
        assert all(ENV_ID not in arg for arg in how.argv)
        assert how.argv[how.argv.index("--") - 1] in ("envship.node", "/opt/envship_node.py",
                                                       "--verbose", "exec")
        assert how.env_vars == {"ENVSHIP_ENV": signed}
        assert how.environ(base={"PATH": "/bin"})["ENVSHIP_ENV"] == signed
        assert "5ec12e7" not in how.shown() and "5ec12e7" in how.shown(show_signatures=True)


def test_env_coerce_reads_and_verifies_every_reference(tmp_path: Path) -> None:
    """Env.coerce: what every engine calls on the env it is given."""
    store = open_store(str(tmp_path / "store"))
    env = make_env(tmp_path / "blobs")
    env_id = store.publish(env.manifest, env.blobs).env_id
    root = tmp_path / "store"
    store.set_tag("prod", env_id)
    opened = Env.coerce(str(root / "envs" / f"{env_id}.json"))
    assert opened.env_id == env_id and Env.coerce(opened) is opened
    assert Env.coerce(root / "tags" / "prod.json").env_id == env_id
    assert Env.open(root / "tags" / "prod.json").env_id == env_id  # a Path, as coerce takes
    with pytest.raises(EnvshipError, match="neither an Env nor an env URI"):
        Env.open(None)  # type: ignore[arg-type]
    assert Env.coerce(opened, {"anon": True}).storage_options == {"anon": True}
    with pytest.raises(EnvshipError, match="missing"):
        Env.coerce(str(root / "tags" / "missing.json"))
    # A manifest that does not hash to the id in its name is refused, however it is named.
    packed = tmp_path / "packed"
    (packed / "envs").mkdir(parents=True)
    (packed / "envs" / f"{ENV_ID}.json").write_text("{}")
    for ref in (packed, packed / "envs" / f"{ENV_ID}.json"):
        with pytest.raises(EnvshipError):
            Env.coerce(ref)
    (root / "envs" / f"{env_id}.json").write_text("{}")
    with pytest.raises(EnvshipError, match=env_id[:12]):
        Env.coerce(str(root / "envs" / f"{env_id}.json"))


def test_process_environ_sets_cache_and_drops_python_path(tmp_path: Path) -> None:
    environ = process_environ(tmp_path, {"A": "1"}, base={"PYTHONPATH": "/x", "PATH": "/bin"})
    assert environ == {"PATH": "/bin", "ENVSHIP_CACHE": str(tmp_path), "A": "1"}


@pytest.fixture(scope="module")
def shipped_sample(sample_env: SampleEnv, tmp_path_factory: pytest.TempPathFactory) -> Shipped:
    return ship_venv(sample_env.python, tmp_path_factory.mktemp("exec") / "store")


@pytest.mark.parametrize("form", ["module", "single-file", "envship-exec", "launch"])
def test_command_runs_inside_env(
    form: str, shipped_sample: Shipped, node_script: Path, tmp_path: Path
) -> None:
    from envship.env import Env
    from envship.packing.manifest import Manifest

    manifest_path = shipped_sample.store / "envs" / f"{shipped_sample.env_id}.json"
    env = Env(shipped_sample.uri, Manifest.from_json(manifest_path.read_bytes()),
              str(shipped_sample.store))
    code = ("import os, mylib, numpy; "
            "print(os.environ['ENVSHIP_ENV_ID'], 'ENVSHIP_ENV' in os.environ, mylib.hello())")
    envship_bin = str(Path(sys.executable).parent / "envship")
    options = {"node_script_path": str(node_script) if form == "single-file" else None,
               "envship_bin": envship_bin if form == "envship-exec" else None}
    environ = process_environ(tmp_path / "cache", base=child_environ())
    if form == "launch":  # the reference in the environment, not on the command line
        how = launch(env, ["python", "-c", code])
        argv, environ = how.argv, how.environ(tmp_path / "cache", base=child_environ())
    else:
        argv = command(env, ["python", "-c", code], **options)  # type: ignore[arg-type]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=environ)
    assert proc.returncode == 0, proc.stderr
    # The command never sees the reference (it may be signed): ENVSHIP_ENV_ID names the env.
    assert proc.stdout.split() == [shipped_sample.env_id, "False", "hello", "from", "mylib", "1"]
    assert (tmp_path / "cache" / "envs" / shipped_sample.env_id).is_dir()


def test_engine_modules_import_no_engine() -> None:
    code = (
        "import sys, envship, envship.dask, envship.ray, envship.yarn, envship.engines.exec; "
        "print(sorted(m for m in ('distributed', 'dask', 'ray', 'skein') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
