"""YARN: the skein spec envship builds, checked without a cluster.

No YARN cluster runs here. skein builds and validates specs without one, so the tests check
the spec skein produces (YAML/dict round trip, archive resources, no secrets, options) and
then play the part of YARN's localizer: each resource is unpacked/copied into a container
directory as YARN would, the store is taken away, and the container script (a command, or a
pickled function) runs for real. Submitting, waiting and fetching logs need a cluster: only
their argument checks and their error without one are tested.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from envship.engines.exec import NODE_SCRIPT_NAME
from envship.errors import EngineError
from kits.enginekit import Shipped, child_environ, local_path, ship_venv, yarn_localize
from kits.support import SampleEnv

skein = pytest.importorskip("skein")


@pytest.fixture
def shipped(sample_env: SampleEnv, tmp_path: Path) -> Shipped:
    return ship_venv(sample_env.python, tmp_path / "store")


def test_spec_round_trips_and_holds_layers_as_archives(shipped: Shipped, tmp_path: Path) -> None:
    import envship.yarn

    spec = envship.yarn.application_spec(
        shipped.uri, ["python", "-m", "mylib.extra"], name="job", queue="science",
        instances=3, memory="1 GiB", env_vars={"MODE": "test"},
    )
    again = skein.ApplicationSpec.from_yaml(spec.to_yaml())
    assert again.to_dict() == spec.to_dict()
    data = spec.to_dict()
    assert data["name"] == "job" and data["queue"] == "science"
    service = data["services"]["envship"]
    assert service["instances"] == 3
    assert service["resources"]["memory"] == 1024
    assert service["env"] == {"MODE": "test"}
    files = service["files"]
    manifest = json.loads((shipped.store / "envs" / f"{shipped.env_id}.json").read_text())
    archives = {k: v for k, v in files.items() if v["type"] == "ARCHIVE"}
    assert len(archives) == len(manifest["layers"])
    for lay in manifest["layers"]:
        hex_ = lay["digest"].split(":", 1)[1]
        res = files[f"envship-layer-{hex_}"]
        assert local_path(res["source"]) == shipped.store / "blobs" / "sha256" / f"{hex_}.tar.gz"
        assert res["visibility"] == "PUBLIC"  # NodeManagers share blobs across applications
    assert files[NODE_SCRIPT_NAME]["type"] == "FILE"
    assert files[NODE_SCRIPT_NAME]["visibility"] == "PRIVATE"
    assert local_path(files[NODE_SCRIPT_NAME]["source"]).read_text().startswith("#!")
    assert "python -m mylib.extra" in service["script"]
    assert data["file_systems"] == []  # a local store needs no delegation token


def test_spec_maps_s3_to_s3a_and_keeps_secrets_out(shipped: Shipped, tmp_path: Path) -> None:
    from envship.engines.yarn import yarn_resources
    from envship.env import Env
    from envship.packing.manifest import Manifest

    manifest_path = shipped.store / "envs" / f"{shipped.env_id}.json"
    manifest = Manifest.from_json(manifest_path.read_bytes())
    env = Env(f"s3://bucket/envs/{shipped.env_id}.json", manifest, "s3://bucket",
              {"key": "AKIASECRET", "secret": "hunter2"})
    res = yarn_resources(env, "python job.py", node_script="hdfs:///apps/envship_node.py")
    sources = [src for src, _ in res.files.values()]
    assert all(s.startswith(("s3a://bucket/", "hdfs://")) for s in sources), sources
    dumped = json.dumps([sources, res.script])
    assert "AKIASECRET" not in dumped and "hunter2" not in dumped
    import envship.yarn

    spec = envship.yarn.application_spec(env, "python job.py", node_script="hdfs:///x.py")
    assert spec.file_systems == ["s3a://bucket"]  # skein gets delegation tokens for the store
    assert "hunter2" not in spec.to_yaml()


def test_container_script_runs_in_env_from_localized_layers(
    shipped: Shipped, tmp_path: Path
) -> None:
    import envship.yarn

    code = (
        "import os, numpy, mylib; print(os.environ['ENVSHIP_ENV_ID'], mylib.hello(), "
        "int(numpy.arange(5).sum()))"
    )
    spec = envship.yarn.application_spec(shipped.uri, ["python", "-c", code])
    service = spec.to_dict()["services"]["envship"]
    # The container's command line names no env: the node runtime reads $ENVSHIP_ENV.
    exec_line = service["script"].splitlines()[-1]
    assert exec_line.startswith("exec python3 envship_node.py -- python -c")
    assert shipped.env_id not in exec_line and "ENVSHIP_ENV=" in service["script"]
    container = tmp_path / "container_01"
    yarn_localize(service["files"], container)
    # Nothing may be fetched from the store: YARN has localized every layer already.
    shutil.move(shipped.store, tmp_path / "store-gone")
    proc = subprocess.run(
        ["bash", "-c", service["script"]], cwd=container, capture_output=True, text=True,
        timeout=120, env=child_environ(HOME=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [shipped.env_id, "hello", "from", "mylib", "1", "10"]
    view = container / ".envship" / "cache" / "envs" / shipped.env_id
    assert (view / "bin" / "python").exists()
    # YARN's copies are used where they are (named in ENVSHIP_LAYER_DIRS): nothing was unpacked
    # again, and nothing was linked into the node cache (a symlinked entry is never trusted).
    cached = container / ".envship" / "cache" / "layers"
    assert not cached.exists() or not any(cached.iterdir())
    numpy_init = next(view.glob("lib/python3*/site-packages/numpy/__init__.py"))
    localized = [p for p in container.glob("envship-layer-*/site-packages/numpy/__init__.py")]
    assert localized and numpy_init.stat().st_ino == localized[0].stat().st_ino


def test_container_needs_no_python_when_env_has_python_layer(
    sample_env: SampleEnv, tmp_path: Path
) -> None:
    import envship.yarn

    shipped = ship_venv(sample_env.python, tmp_path / "store", with_python=True)
    code = "import os, sys, mylib; print(os.path.realpath(sys.executable)); print(mylib.hello())"
    spec = envship.yarn.application_spec(shipped.uri, ["python", "-c", code])
    service = spec.to_dict()["services"]["envship"]
    assert 'envship-layer-' in service["script"].splitlines()[-1]  # the layer's interpreter
    container = tmp_path / "container_01"
    yarn_localize(service["files"], container)
    # A PATH with the shell tools the script uses and no Python at all.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("mkdir", "cp", "ln"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    proc = subprocess.run(
        ["/bin/bash", "-c", service["script"]], cwd=container, capture_output=True, text=True,
        timeout=120, env={"PATH": str(tools), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    executable, hello = proc.stdout.splitlines()
    assert executable.startswith(str(container / "envship-layer-")), executable
    assert hello == "hello from mylib 1"


def test_tag_uri_is_pinned_to_its_env(shipped: Shipped) -> None:
    from envship.engines.yarn import MANIFEST_NAME, yarn_resources

    (shipped.store / "tags").mkdir(exist_ok=True)
    tag = shipped.store / "tags" / "prod.json"
    tag.write_text(json.dumps({"env": shipped.env_id}))
    res = yarn_resources(str(tag), "true")
    assert res.env_id == shipped.env_id
    assert res.files[MANIFEST_NAME][0].endswith(f"/envs/{shipped.env_id}.json")


def test_bad_env_uri_is_a_clear_error(tmp_path: Path) -> None:
    import envship.yarn

    with pytest.raises(EngineError, match="<store>/envs/<env-id>.json"):
        envship.yarn.application_spec(str(tmp_path / "nope.json"), "true")


def _localize_into(files: dict[str, dict[str, object]], container: Path) -> None:
    """A second application's resources on the same node: YARN localizes what differs."""
    for name, res in files.items():
        if res["type"] == "FILE":
            shutil.copy(local_path(str(res["source"])), container / name)


def test_function_runs_in_the_container_with_the_cluster_pack_options(
    shipped: Shipped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As cluster-pack's build_with_func + submit's options, without a cluster: the spec is
    checked, its resources laid out as YARN's localizer would (files copied, archives
    unpacked, the store taken away), and its script run for real in that directory."""
    import pickle

    import envship.yarn

    helpers = tmp_path / "local_code"
    helpers.mkdir()
    (helpers / "yarn_helper_mod.py").write_text("def scale(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(helpers))
    import yarn_helper_mod  # a local module the env lacks: it must travel by value

    def job(n: int, *, word: str) -> dict[str, object]:
        import os

        import mylib
        import numpy

        with open("data.txt") as f:
            data = f.read().strip()
        print("in-container", mylib.hello(), os.environ.get("HOOKED"), data)
        return {"sum": int(numpy.arange(n).sum()), "scaled": yarn_helper_mod.scale(n),
                "word": word, "env": os.environ["ENVSHIP_ENV_ID"]}

    def fails() -> None:
        raise ValueError("boom in the container")

    (tmp_path / "data.txt").write_text("payload-data\n")
    spec = envship.yarn.function_spec(
        shipped.uri, job, (5,), {"word": "hi"}, user="alice", node_label="gpu", max_restarts=2,
        pre_script_hook="export HOOKED=hooked", additional_files=[tmp_path / "data.txt"],
        call_dir=tmp_path / "calls",
    )
    again = skein.ApplicationSpec.from_yaml(spec.to_yaml())
    assert again.to_dict() == spec.to_dict()
    data = spec.to_dict()
    service = data["services"]["envship"]
    assert data["user"] == "alice" and service["node_label"] == "gpu"
    assert service["max_restarts"] == 2
    files = service["files"]
    for name in ("data.txt", envship.yarn.CALL_NAME, envship.yarn.RUNNER_NAME):
        assert files[name]["type"] == "FILE"
    container = tmp_path / "container_01"
    yarn_localize(files, container)
    shutil.move(shipped.store, tmp_path / "store-gone")
    monkeypatch.delitem(__import__("sys").modules, "yarn_helper_mod")
    proc = subprocess.run(["bash", "-c", service["script"]], cwd=container, capture_output=True,
                          text=True, timeout=300, env=child_environ(HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "in-container hello from mylib 1 hooked payload-data" in proc.stdout
    outcome = pickle.loads((container / envship.yarn.RESULT_NAME).read_bytes())
    assert outcome == ("ok", {"sum": 10, "scaled": 15, "word": "hi", "env": shipped.env_id})

    # A function that raises fails the container, with its traceback in the log.
    shutil.move(tmp_path / "store-gone", shipped.store)
    failing = envship.yarn.function_spec(shipped.uri, fails, call_dir=tmp_path / "calls")
    _localize_into(failing.to_dict()["services"]["envship"]["files"], container)
    proc = subprocess.run(["bash", "-c", failing.to_dict()["services"]["envship"]["script"]],
                          cwd=container, capture_output=True, text=True, timeout=300,
                          env=child_environ(HOME=str(tmp_path)))
    assert proc.returncode == 1
    assert "ValueError: boom in the container" in proc.stderr and "Traceback" in proc.stderr


def test_spec_options_are_checked(shipped: Shipped, tmp_path: Path) -> None:
    import envship.yarn

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "conf.ini").write_text(d)
    with pytest.raises(EngineError, match="would both be localized as 'conf.ini'"):
        envship.yarn.application_spec(shipped.uri, "true", additional_files=[
            tmp_path / "a" / "conf.ini", tmp_path / "b" / "conf.ini"])
    spec = envship.yarn.application_spec(shipped.uri, "true", additional_files={
        "a.ini": tmp_path / "a" / "conf.ini", "b.ini": str(tmp_path / "b" / "conf.ini")})
    files = spec.to_dict()["services"]["envship"]["files"]
    assert local_path(files["b.ini"]["source"]) == tmp_path / "b" / "conf.ini"
    with pytest.raises(EngineError, match="not found"):
        envship.yarn.application_spec(shipped.uri, "true", additional_files=[tmp_path / "no"])
    with pytest.raises(EngineError, match="that name is envship's"):
        envship.yarn.application_spec(shipped.uri, "true",
                                      additional_files={NODE_SCRIPT_NAME: tmp_path / "a"})
    with pytest.raises(EngineError, match="max_restarts"):
        envship.yarn.application_spec(shipped.uri, "true", max_restarts=-1)
    extra = {"x.txt": (str(tmp_path / "b" / "conf.ini"), "file")}
    one = envship.yarn.application_spec(shipped.uri, "true", name="myjob", extra_files=extra,
                                        additional_files=tmp_path / "a" / "conf.ini")
    assert one.name == "myjob"  # not the last extra file's name (a shadowed variable)
    assert local_path(one.to_dict()["services"]["envship"]["files"]["conf.ini"]["source"]) == (
        tmp_path / "a" / "conf.ini")  # one path, not its letters
    hooked = envship.yarn.application_spec(shipped.uri, "true", pre_script_hook="echo pre")
    lines = hooked.to_dict()["services"]["envship"]["script"].splitlines()
    assert lines[-2:] == ["echo pre", lines[-1]] and lines[-1].startswith("exec ")


def test_wait_and_logs_check_arguments_and_say_when_no_cluster_is_reachable() -> None:
    """No YARN here: a real skein client cannot be had, so this checks what needs none —
    argument handling, and the one-line error when skein cannot reach a cluster (its driver
    needs the `yarn` command and HADOOP_CONF_DIR). Polling and log retrieval against a real
    ResourceManager are untested."""
    import envship.yarn

    with pytest.raises(EngineError, match="not a YARN application id"):
        envship.yarn.wait_for_finished("app-1")
    with pytest.raises(EngineError, match="poll_every"):
        envship.yarn.wait_for_finished("application_1700000000000_0001", poll_every=0)
    with pytest.raises(EngineError, match="tries"):
        envship.yarn.get_application_logs("application_1700000000000_0001", tries=0)
    with pytest.raises(EngineError, match="not a YARN application id"):
        envship.yarn.get_application_logs("application_x")
    for call in (lambda: envship.yarn.wait_for_finished("application_1700000000000_0001"),
                 lambda: envship.yarn.get_application_logs("application_1700000000000_0001")):
        with pytest.raises(EngineError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and "HADOOP_CONF_DIR" in message, message
