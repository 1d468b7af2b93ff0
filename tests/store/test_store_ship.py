"""End to end: `envship ship` of a real venv (numpy + an editable project) to local and S3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envship.store import open_store
from kits.clikit import ENVSHIP, envship, envship_process
from kits.support import MotoServer, SampleEnv, make_venv


def ship_cli(store: str, python: Path, *extra: str, env: dict[str, str] | None = None,
             ok: bool = True, process: bool = False) -> subprocess.CompletedProcess[str]:
    """`envship ship` in this process, or in its own (*process*: S3 clients read their
    environment once)."""
    run = envship_process if process else envship
    proc = run("ship", store, "--python", str(python), "--json", *extra,
               env={"VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV"), **(env or {})}, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ship_api_cold_then_warm(sample_env: SampleEnv, tmp_path: Path) -> None:
    from envship.shipping import ship, ship_result

    store_url = str(tmp_path / "store")
    env = ship(store_url, python=str(sample_env.python))
    assert env.uri == f"{store_url}/envs/{env.env_id}.json"
    assert Path(env.uri).is_file() and env.store_url == store_url
    store = open_store(store_url)
    assert store.read_manifest(env.env_id) == env.manifest
    assert {d.name for d in env.manifest.distributions} >= {"numpy", "mylib"}
    for layer in env.manifest.layers:
        assert Path(store.location.blob_path(layer.digest)).stat().st_size == layer.size

    warm = ship_result(store_url, python=str(sample_env.python))
    assert warm.env.env_id == env.env_id
    assert warm.publish.bytes_sent == 0
    assert not any(x.uploaded for x in warm.publish.layers)
    assert warm.publish.seconds <= 0.5  # existence checks only


def test_ship_cli_json_tag_and_default_store(
    sample_env: SampleEnv, isolated_home: Path, session_build_cache: Path
) -> None:
    # The fresh home's build cache starts as the session's (hard links): this test is about
    # the output, the tag and the default store, not about packing cold.
    if session_build_cache.is_dir():
        shutil.copytree(session_build_cache, isolated_home / "build-cache", copy_function=os.link)
    proc = envship("ship", "--python", str(sample_env.python), "--tag", "prod", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    store = isolated_home / "store"
    assert info["env_uri"] == f"{store}/envs/{info['env_id']}.json"
    assert info["bytes_sent"] == sum(x["size"] for x in info["layers"])
    assert all(x["uploaded"] for x in info["layers"])
    assert info["tag_uri"] == f"{store}/tags/prod.json"
    assert json.loads((store / "tags" / "prod.json").read_text()) == {"env": info["env_id"]}

    plain = envship("ship", "--python", str(sample_env.python))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == info["env_uri"]  # stdout: just the env URI
    assert "present" in plain.stderr


def test_pack_and_ship_to_a_local_store_import_no_fsspec(sample_env: SampleEnv,
                                                        tmp_path: Path) -> None:
    """A local store is written with os calls: fsspec (tens of ms to import) stays out, and
    so does rich when the output is JSON."""
    code = ("import sys\nfrom envship._entry import main\ntry:\n    main()\nfinally:\n"
            "    print('fsspec loaded:', 'fsspec' in sys.modules, file=sys.stderr)\n"
            "    print('rich loaded:', 'rich' in sys.modules, file=sys.stderr)\n")
    stores = {"pack": tmp_path / "packed", "ship": tmp_path / "shipped"}
    for command, target in (("pack", ["-o", str(stores["pack"])]),
                            ("ship", [f"file://{stores['ship']}"])):
        proc = subprocess.run([sys.executable, "-c", code, command, *target, "--python",
                               str(sample_env.python), "--json"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "fsspec loaded: False" in proc.stderr, proc.stderr
        assert "rich loaded: False" in proc.stderr, proc.stderr
        env_id = json.loads(proc.stdout)["env_id"]
        manifest = open_store(stores[command]).read_manifest(env_id)  # a complete store
        assert {d.name for d in manifest.distributions} >= {"numpy", "mylib"}
        for layer in manifest.layers:
            blob = Path(open_store(stores[command]).location.blob_path(layer.digest))
            assert blob.stat().st_size == layer.size
        assert not [p for p in stores[command].rglob("*") if ".tmp-" in p.name]


def test_one_line_edit_sends_only_the_code_layer(tmp_path: Path, sample_env: SampleEnv) -> None:
    project = tmp_path / "mylib"
    shutil.copytree(sample_env.project, project,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    python = make_venv(tmp_path / "venv", [], [project])
    store = str(tmp_path / "store")
    first = json.loads(ship_cli(store, python).stdout)
    module = project / "src" / "mylib" / "__init__.py"
    module.write_text(module.read_text().replace("VALUE = 1", "VALUE = 2"))
    second = json.loads(ship_cli(store, python).stdout)
    assert second["env_id"] != first["env_id"]
    sent = {x["kind"]: x["uploaded"] for x in second["layers"]}
    assert sent["code"] is True and not any(v for k, v in sent.items() if k != "code")
    code = next(x for x in second["layers"] if x["kind"] == "code")
    assert second["bytes_sent"] == code["size"]


def test_two_ships_at_once_one_copy(sample_env: SampleEnv, tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen([ENVSHIP, "ship", str(store), "--python", str(sample_env.python),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    infos = [json.loads(o) for o, _ in outs]
    assert infos[0]["env_id"] == infos[1]["env_id"]
    blobs = sorted(p.name for p in (store / "blobs" / "sha256").iterdir())
    assert blobs == sorted(f"{x['digest'][7:]}.tar.gz" for x in infos[0]["layers"])
    assert [p.name for p in (store / "envs").glob("*.json")
            if not p.name.endswith((".provenance.json", ".presigned.json"))] == [
        f"{infos[0]['env_id']}.json"]


@pytest.mark.s3
def test_ship_to_s3_then_run_from_a_presigned_url(
    sample_env: SampleEnv, moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/envs"
    cold = json.loads(ship_cli(url, sample_env.python, "-s",
                               f"endpoint_url={moto.endpoint}", process=True).stdout)
    assert cold["env_uri"] == f"{url}/envs/{cold['env_id']}.json"
    warm = json.loads(ship_cli(url, sample_env.python,
                               env={"AWS_ENDPOINT_URL": moto.endpoint}, process=True).stdout)
    assert warm["bytes_sent"] == 0 and warm["env_id"] == cold["env_id"]

    signed = subprocess.run(
        [ENVSHIP, "presign", cold["env_uri"], "-s", f"endpoint_url={moto.endpoint}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()
    # A node without any AWS credentials or endpoint configuration runs inside the env.
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    node_env["ENVSHIP_CACHE"] = str(tmp_path / "node-cache")
    run = subprocess.run(
        [ENVSHIP, "exec", signed, "--", "python", "-c",
         "import numpy, mylib; print(mylib.hello(), numpy.__name__)"],
        capture_output=True, text=True, timeout=600, env=node_env,
    )
    assert run.returncode == 0, run.stderr
    assert "hello from mylib 1 numpy" in run.stdout


@pytest.mark.s3
def test_ship_to_unreachable_store_fails_clearly(sample_env: SampleEnv) -> None:
    start = time.monotonic()
    proc = ship_cli("s3://nowhere/envs", sample_env.python, "-s",
                    "endpoint_url=http://127.0.0.1:9", ok=False, process=True,
                    env={"ENVSHIP_STORE_RETRY_TIMEOUT": "1", "AWS_ACCESS_KEY_ID": "x",
                         "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"})
    assert proc.returncode == 1
    assert "unreachable" in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 120


def test_tag_after_a_gc_took_the_untagged_env_publishes_it_again(tmp_path: Path) -> None:
    """ship --tag publishes, then tags; a gc in between may collect the (still unreferenced)
    env. The tag step then publishes again instead of failing the ship."""
    from envship.packing.pipeline import PackResult
    from envship.shipping import _tag
    from kits.storekit import make_env

    fixture = make_env(tmp_path / "blobs")
    store = open_store(str(tmp_path / "store"))
    env_id = store.publish(fixture.manifest, fixture.blobs).env_id
    packed = PackResult(fixture.manifest, env_id, fixture.blobs, {})
    for path in (tmp_path / "store").rglob("*.json"):  # what a gc with --keep 0 leaves
        path.unlink()
    for path in (tmp_path / "store" / "blobs").rglob("*.tar.gz"):
        path.unlink()
    uri = _tag(store, "prod", packed, env_id)
    assert uri.endswith("tags/prod.json")
    assert store.read_tag("prod") == env_id
    assert store.read_manifest(env_id) == fixture.manifest
    assert store.verify().ok
