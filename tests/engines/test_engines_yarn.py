"""YARN: the skein spec envship builds, checked without a cluster.

No YARN cluster runs here. skein builds and validates specs without one, so the tests check
the spec skein produces (YAML/dict round trip, archive resources, no secrets) and then play
the part of YARN's localizer: each resource is unpacked/copied into a container directory as
YARN would, the store is taken away, and the container script runs for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from envship.engines.exec import NODE_SCRIPT_NAME
from envship.errors import EngineError
from kits.enginekit import Shipped, child_environ, ship_venv
from kits.support import SampleEnv

skein = pytest.importorskip("skein")


@pytest.fixture
def shipped(sample_env: SampleEnv, tmp_path: Path) -> Shipped:
    return ship_venv(sample_env.python, tmp_path / "store")


def _local(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(parts.path)


def _localize(files: dict[str, dict[str, object]], container: Path) -> None:
    """What YARN's localizer does: copy FILE resources, unpack ARCHIVE ones under their name."""
    container.mkdir()
    for name, res in files.items():
        src = _local(str(res["source"]))
        if res["type"] == "ARCHIVE":
            with tarfile.open(src) as tar:
                tar.extractall(container / name, filter="tar")
        else:
            shutil.copy(src, container / name)


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
        assert _local(res["source"]) == shipped.store / "blobs" / "sha256" / f"{hex_}.tar.gz"
        assert res["visibility"] == "PUBLIC"  # NodeManagers share blobs across applications
    assert files[NODE_SCRIPT_NAME]["type"] == "FILE"
    assert files[NODE_SCRIPT_NAME]["visibility"] == "PRIVATE"
    assert _local(files[NODE_SCRIPT_NAME]["source"]).read_text().startswith("#!")
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
    container = tmp_path / "container_01"
    _localize(service["files"], container)
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
    layers = sorted((container / ".envship" / "cache" / "layers").iterdir())
    assert layers and all(p.is_symlink() for p in layers)  # YARN's copies, not new downloads


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
    _localize(service["files"], container)
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
