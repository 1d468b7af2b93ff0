"""A conda env (real conda packages installed with py-rattler, distributed and Ray pip-installed
on top, packed, its prefix moved away) run by the engines: a Dask worker, a YARN container, and
``envship exec`` / the library from an S3 store and from a presigned manifest. (Spark runs it
in engines/spark/test_spark_conda.py, Ray in test_engines_ray.py, the single-file node script
in node/test_node_conda.py.)

Each checks what only a working conda prefix gives at the new place: libfoo's tool finds its
library and its relocated data path, the pyfoo extension imports, the activate.d variable is
set, and ``sys.prefix`` is the view.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kits.enginekit import PackedConda, child_environ, yarn_localize
from kits.support import MotoServer

ENVSHIP = str(Path(sys.executable).parent / "envship")
# run inside the env: what the assertions compare (the tool's output, the extension, activation)
PROBE = (
    "import json, os, subprocess, sys, pyfoo\n"
    "tool = subprocess.run(['foo'], capture_output=True, text=True)\n"
    "print(json.dumps({'prefix': sys.prefix, 'answer': pyfoo.answer(), 'foo': tool.stdout,"
    " 'FOO_DATA': os.environ.get('FOO_DATA'), 'datadir': pyfoo.datadir()}))\n"
)


def _expected(view: str) -> dict[str, object]:
    return {"prefix": view, "answer": 42, "foo": "foo 42 data of libfoo\n",
            "FOO_DATA": f"{view}/share/foo", "datadir": f"{view}/share/foo"}


def _last_json(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


_DASK_CLIENT = """
    import json, sys
    import envship.dask

    uri, cache = sys.argv[1], sys.argv[2]


    def probe():
        import os, subprocess, sys
        import pyfoo
        tool = subprocess.run(["foo"], capture_output=True, text=True)
        return {"prefix": sys.prefix, "answer": pyfoo.answer(), "foo": tool.stdout,
                "FOO_DATA": os.environ.get("FOO_DATA"), "datadir": pyfoo.datadir()}


    with envship.dask.cluster(uri, n_workers=1, cache_dir=cache) as client:
        out = {"task": client.submit(probe).result(),
               "check": sorted(set(envship.dask.check(client, uri).values()))}
    print(json.dumps(out))
"""


@pytest.mark.dask
def test_dask_worker_runs_a_task_in_the_conda_env(
    conda_env: PackedConda, conda_node_cache: Path, dask_client: Path, tmp_path: Path
) -> None:
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(_DASK_CLIENT))
    proc = subprocess.run([str(dask_client), str(script), conda_env.uri, str(conda_node_cache)],
                          capture_output=True, text=True, timeout=600, env=child_environ(),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    out = _last_json(proc.stdout)
    assert out["task"] == _expected(str(conda_node_cache / "envs" / conda_env.env_id))
    assert out["check"] == [conda_env.env_id]


def test_yarn_container_runs_the_conda_env_from_localized_layers(
    conda_env: PackedConda, tmp_path: Path
) -> None:
    """No YARN here (as in test_engines_yarn.py): the spec's resources are laid out as YARN's
    localizer would (archives unpacked under their resource names, files copied) in a fresh
    container directory, the store is taken away, and the container's script runs in bash."""
    import envship.yarn

    spec = envship.yarn.application_spec(conda_env.uri, ["python", "-c", PROBE])
    service = spec.to_dict()["services"]["envship"]
    container = tmp_path / "container_01"
    yarn_localize(service["files"], container)
    gone = tmp_path / "store-gone"
    shutil.move(conda_env.store, gone)  # nothing may be fetched: YARN localized every layer
    try:
        proc = subprocess.run(["bash", "-c", service["script"]], cwd=container,
                              capture_output=True, text=True, timeout=300,
                              env=child_environ(HOME=str(tmp_path)))
    finally:
        shutil.move(gone, conda_env.store)
    assert proc.returncode == 0, proc.stderr[-6000:]
    view = container / ".envship" / "cache" / "envs" / conda_env.env_id
    assert _last_json(proc.stdout) == _expected(str(view))
    assert not (view / "pyvenv.cfg").exists() and (view / "conda-meta").is_dir()  # a prefix


@pytest.mark.s3
def test_conda_env_from_s3_and_from_a_presigned_manifest(
    conda_env: PackedConda, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envship.node import prepare
    from envship.store import open_store

    bucket = moto.new_bucket()
    store = open_store(f"s3://{bucket}/envs", {"endpoint_url": moto.endpoint})
    uri = store.publish(conda_env.result.manifest, conda_env.result.blobs).env_uri
    assert uri.startswith("s3://") and uri.endswith(f"/{conda_env.env_id}.json")

    cache = tmp_path / "node-s3"  # `envship exec` from s3:// ...
    environ = dict(child_environ(), AWS_ENDPOINT_URL=moto.endpoint, ENVSHIP_CACHE=str(cache))
    proc = subprocess.run([ENVSHIP, "exec", uri, "--", "python", "-c", PROBE],
                          capture_output=True, text=True, timeout=600, env=environ)
    assert proc.returncode == 0, proc.stderr[-6000:]
    view = str(cache / "envs" / conda_env.env_id)
    assert _last_json(proc.stdout) == _expected(view)

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)  # ... and the library, same node
    prepared = prepare(uri, cache_dir=cache)
    assert prepared.path == view
    lib = subprocess.run([prepared.python, "-c", PROBE], capture_output=True, text=True,
                         timeout=120, env=prepared.environ(child_environ()))
    assert lib.returncode == 0, lib.stderr[-6000:]
    assert _last_json(lib.stdout) == _expected(view)

    signed = subprocess.run(
        [ENVSHIP, "presign", uri, "-s", f"endpoint_url={moto.endpoint}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()
    # a node without AWS credentials, endpoint or s3fs configuration: HTTPS URLs only
    node = {k: v for k, v in child_environ().items() if not k.startswith("AWS_")}
    node["ENVSHIP_CACHE"] = str(tmp_path / "node-presigned")
    proc = subprocess.run([ENVSHIP, "exec", signed, "--", "python", "-c", PROBE],
                          capture_output=True, text=True, timeout=600, env=node)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert _last_json(proc.stdout) == _expected(
        str(tmp_path / "node-presigned" / "envs" / conda_env.env_id))
