"""The store commands of the real `envship` command line (in this process, but for S3)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from envship.packing.manifest import Manifest
from envship.store import open_store
from kits.clikit import envship, envship_process
from kits.storekit import FixtureEnv
from kits.support import MotoServer


def cli(*args: str, ok: bool = True, env: dict[str, str] | None = None, process: bool = False,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """*process*: a process of its own (S3 clients: botocore reads its environment once)."""
    run = envship_process if process else envship
    proc = run(*args, env={"VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV"), **(env or {})},
               timeout=120, cwd=cwd)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ls_tag_gc_on_a_local_store(tmp_path: Path, fixture_env: FixtureEnv) -> None:
    url = str(tmp_path / "store")
    env_id = open_store(url).publish(fixture_env.manifest, fixture_env.blobs).env_id
    env_uri = f"{url}/envs/{env_id}.json"

    tag = cli("tag", env_uri, "prod")
    assert tag.stdout.strip() == f"{url}/tags/prod.json"
    assert json.loads(Path(url, "tags", "prod.json").read_text()) == {"env": env_id}
    cli("tag", url, "dev", "--env", env_id[:8])

    (listed,) = json.loads(cli("store", "ls", url, "--json").stdout)
    assert listed["env_id"] == env_id and listed["tags"] == ["dev", "prod"]
    assert listed["size"] == sum(lay.size for lay in fixture_env.manifest.layers)
    assert listed["uri"] == env_uri and listed["created"].endswith("Z")

    gc = json.loads(cli("gc", url, "--keep", "0", "--grace", "0", "--json").stdout)
    assert gc["envs_removed"] == [] and gc["blobs_removed"] == []  # tagged: kept
    # a publisher that died long ago left its lease: gc's text output says it removed it
    dead = Path(url, "leases", f"{'0' * 64}.deadbeef0000.json")
    dead.write_text(json.dumps({"env": "0" * 64, "blobs": [], "created": "2020-01-01T00:00:00Z",
                                "ttl": 3600}))
    os.utime(dead, (1577836800, 1577836800))  # 2020: its age is what gc goes by
    text = cli("gc", url, "--grace", "0").stdout
    assert "removed 1 stale lease(s) of publishers that died" in text and not dead.exists()

    bad = cli("tag", env_uri, "no/slash", ok=False)
    assert bad.returncode == 1 and "bad tag name" in bad.stderr
    local = cli("presign", env_uri, ok=False)
    assert local.returncode == 1 and "cannot make presigned" in " ".join(local.stderr.split())


def test_default_store_is_under_envship_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = cli("store", "ls", "--json", env={"ENVSHIP_HOME": str(home)})
    assert json.loads(out.stdout) == []
    from envship.paths import default_store_url

    os.environ["ENVSHIP_HOME"], old = str(home), os.environ.get("ENVSHIP_HOME", "")
    try:
        assert default_store_url() == str(home / "store")
    finally:
        os.environ["ENVSHIP_HOME"] = old


@pytest.mark.s3
def test_presign_and_ls_on_s3_with_endpoint_option(
    moto: MotoServer, bucket: str, fixture_env: FixtureEnv, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/envs"
    env_id = open_store(url, moto.storage_options()).publish(
        fixture_env.manifest, fixture_env.blobs).env_id
    env_uri = f"{url}/envs/{env_id}.json"
    opt = ["-s", f"endpoint_url={moto.endpoint}"]

    listed = json.loads(cli("store", "ls", url, *opt, "--json", process=True).stdout)
    assert [e["env_id"] for e in listed] == [env_id]

    signed = cli("presign", env_uri, "--expires", "300", *opt, process=True).stdout.strip()
    too_long = cli("presign", env_uri, "--expires", "700000", *opt, ok=False, process=True)
    assert too_long.returncode == 1 and "at most 7 days" in too_long.stderr  # S3 refuses more
    assert signed.startswith(moto.endpoint) and "Signature" in signed
    # A node with no credentials at all reads the manifest and every layer.
    with urllib.request.urlopen(signed, timeout=30) as resp:
        manifest = Manifest.from_json(resp.read(), presigned=True)
    assert manifest.env_id == env_id and all(lay.url for lay in manifest.layers)

    # AWS_ENDPOINT_URL in the environment works as well as the storage option. -o names a
    # directory (or the file name nodes know a presigned manifest by); the path is absolute.
    out = tmp_path / f"{env_id}.presigned.json"
    path = cli("presign", env_uri, "-o", ".", env={"AWS_ENDPOINT_URL": moto.endpoint},
               process=True, cwd=tmp_path).stdout.strip()
    assert path == str(out)
    assert Manifest.from_json(out.read_bytes(), presigned=True).env_id == env_id
    wrong = cli("presign", env_uri, "-o", str(tmp_path / "env.json"), ok=False, process=True,
                env={"AWS_ENDPOINT_URL": moto.endpoint})
    assert wrong.returncode == 1 and f"name the file {env_id}.presigned.json" in wrong.stderr
    assert not (tmp_path / "env.json").exists()
