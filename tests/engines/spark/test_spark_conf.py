"""Spark confs and boot archives, run for real without a JVM: fetch the files and unpack the
archives the way Spark does, then start the executor `python` from a bare PATH."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from envship.engines.hadoop import hadoop_url
from envship.engines.spark.base import SIGNED_URL_REGEX
from envship.engines.spark.conf import conf, merge_list
from envship.engines.spark.local import is_local_master
from envship.engines.spark.node_cache import node_cache_boot
from envship.env import Env
from envship.errors import EngineError, EnvshipError
from kits.nodekit import run_held_at_preparation
from kits.sparkkit import handmade_env, s3_handmade_env
from kits.support import MotoServer

PROBE = (
    "import json, os, sys, importlib.util as u\n"
    "import mymod, depmod\n"
    "print(json.dumps({'prefix': sys.prefix, 'env_id': os.environ.get('ENVSHIP_ENV_ID'),"
    " 'mymod': mymod.WHERE, 'depmod': depmod.WHERE, 'pth': os.environ.get('PTH_RAN'),"
    " 'args': sys.argv[1:], 'numpy': u.find_spec('numpy') is not None}))\n"
)

LAYERS = {
    "code": {"site-packages/mymod.py": b"WHERE = 'code'\n"},
    "deps": {
        "site-packages/mymod.py": b"WHERE = 'deps (shadowed by code)'\n",
        "site-packages/depmod.py": b"WHERE = 'deps'\n",
        # .pth files inside a layer must be processed, as editable finders rely on them
        "site-packages/zz_probe.pth": b"import os; os.environ['PTH_RAN'] = 'yes'\n",
    },
}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return handmade_env(str(tmp_path / "store"), LAYERS, tmp_path / "work")


def _bare_env(bare_bin: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bare_bin}:/usr/bin:/bin"
    env.update(extra)
    return env


def _unpack(archive_entry: str, root: Path) -> None:
    """What Spark does for `path#alias` in spark.archives: unpack into ./alias."""
    path, _, alias = archive_entry.partition("#")
    with tarfile.open(path) as tar:
        tar.extractall(root / alias, filter="tar")


def _deliver(c: dict[str, str], root: Path) -> None:
    """What Spark does for an application's spark.files and spark.archives on an executor:
    each file fetched into its working directory as it is, each archive unpacked."""
    root.mkdir(parents=True, exist_ok=True)
    for path in filter(None, c.get("spark.files", "").split(",")):
        shutil.copyfile(path, root / Path(path).name)
    for entry in c["spark.archives"].split(","):
        _unpack(entry, root)


def _run_probe(python: Path, env: dict[str, str], cwd: Path) -> dict[str, object]:
    proc = subprocess.run(
        [str(python), "-c", PROBE, "a1", "--flag"], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_archives_conf_runs_executor_python_inside_the_layers(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    c = conf(env, "archives", master="spark://127.0.0.1:7077", boot_dir=tmp_path / "boot")
    assert c["spark.pyspark.python"] == "./envship-boot/python"
    assert c["spark.envship.envId"] == env.env_id
    store = env.store()
    # a local store's blobs go as plain files (nothing unpacked by Spark, on the driver or the
    # executors), named <hex>.blob (Spark untars *.tar.gz files); the boot unpacks them
    files = [Path(f) for f in c["spark.files"].split(",")]
    assert [f.name for f in files] == [f"{lay.hex}.blob" for lay in env.manifest.layers]
    for f, lay in zip(files, env.manifest.layers, strict=True):  # hard links of the blobs
        assert os.path.samefile(f, store.blob_url(lay.digest))
    (boot,) = c["spark.archives"].split(",")
    assert boot.endswith("#envship-boot")
    # deterministic: the same env gives the same boot file, byte for byte
    again = conf(env, "archives", master="spark://h:1", boot_dir=tmp_path / "boot")
    assert again["spark.archives"] == c["spark.archives"]

    executor_dir = tmp_path / "executor"  # an executor's working directory
    _deliver(c, executor_dir)
    python = executor_dir / "envship-boot" / "python"
    out = _run_probe(python, _bare_env(bare_bin), cwd=tmp_path)
    assert out["prefix"] == str(executor_dir / "envship-view")
    assert out["env_id"] == env.env_id
    assert out["mymod"] == "code" and out["depmod"] == "deps"
    assert out["pth"] == "yes"
    assert out["args"] == ["a1", "--flag"]
    assert out["numpy"] is False  # the base interpreter's site-packages stay out
    assert (executor_dir / "envship-view" / "envship-env-id").read_text().strip() == env.env_id
    # unpacked once per executor directory, into its own node cache
    layers = sorted(p.name for p in (executor_dir / "envship-cache" / "layers").iterdir())
    assert layers == sorted(lay.hex for lay in env.manifest.layers)


def test_archives_boot_refuses_a_blob_that_does_not_match_its_digest(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    c = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot")
    root = tmp_path / "executor"
    _deliver(c, root)
    code = env.manifest.layers[0]
    blob = root / f"{code.hex}.blob"
    other = root / f"{env.manifest.layers[1].hex}.blob"
    blob.write_bytes(other.read_bytes())  # a valid tar.gz, but not the one the manifest names
    proc = subprocess.run([str(root / "envship-boot" / "python"), "-c", "pass"],
                          env=_bare_env(bare_bin), capture_output=True, text=True)
    assert proc.returncode == 127
    assert "sha256" in proc.stderr and "refusing" in proc.stderr
    assert not (root / "envship-view").exists()
    blob.unlink()  # and a blob that never arrived names the conf
    proc = subprocess.run([str(root / "envship-boot" / "python"), "-c", "pass"],
                          env=_bare_env(bare_bin), capture_output=True, text=True)
    assert proc.returncode == 127 and "spark.files" in proc.stderr


def test_archives_boot_builds_the_view_once_under_concurrency(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    c = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot")
    root = tmp_path / "executor"
    _deliver(c, root)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(
            lambda _: _run_probe(root / "envship-boot" / "python", _bare_env(bare_bin), root),
            range(4),
        ))
    assert {o["prefix"] for o in outs} == {str(root / "envship-view")}
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]


def test_archives_boot_fails_clearly_without_a_matching_python(
    tmp_path: Path, bare_bin: Path
) -> None:
    env = handmade_env(str(tmp_path / "store"), LAYERS, tmp_path / "work", version="3.99.0")
    c = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot")
    root = tmp_path / "executor"
    _deliver(c, root)
    proc = subprocess.run(
        [str(root / "envship-boot" / "python"), "-c", "pass"],
        env=_bare_env(bare_bin), capture_output=True, text=True,
    )
    assert proc.returncode == 127
    assert "needs Python 3.99" in proc.stderr and "--with-python" in proc.stderr
    assert not (root / "envship-view").exists()


def test_node_cache_conf_runs_through_the_node_runtime(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    cache = tmp_path / "node-cache"
    c = conf(env, "node-cache", master="spark://h:1", cache_dir=str(cache),
             boot_dir=tmp_path / "boot")
    assert c["spark.executorEnv.ENVSHIP_ENV"] == env.uri
    assert c["spark.executorEnv.ENVSHIP_CACHE"] == str(cache)
    assert c["spark.pyspark.python"] == "./envship-boot/python"
    (boot,) = c["spark.archives"].split(",")
    assert "spark.yarn.appMasterEnv.ENVSHIP_ENV" not in c
    root = tmp_path / "executor"
    _unpack(boot, root)
    run_env = _bare_env(bare_bin, ENVSHIP_ENV=env.uri, ENVSHIP_CACHE=str(cache))
    out = _run_probe(root / "envship-boot" / "python", run_env, cwd=root)
    assert out["prefix"] == str(cache / "envs" / env.env_id)
    assert out["env_id"] == env.env_id
    assert out["mymod"] == "code" and out["pth"] == "yes" and out["numpy"] is False
    # cluster deploy mode: the driver starts through the same wrapper
    cluster = conf(env, "node-cache", master="yarn", deploy_mode="cluster",
                   boot_dir=tmp_path / "boot")
    assert cluster["spark.yarn.appMasterEnv.ENVSHIP_ENV"] == env.uri


def test_node_cache_wrapper_without_env_ref_says_what_to_set(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    c = conf(env, "node-cache", master="spark://h:1", boot_dir=tmp_path / "boot")
    _unpack(c["spark.archives"], tmp_path / "x")
    proc = subprocess.run([str(tmp_path / "x" / "envship-boot" / "python"), "-c", "pass"],
                          env=_bare_env(bare_bin), capture_output=True, text=True)
    assert proc.returncode == 127
    assert "ENVSHIP_ENV" in proc.stderr


def test_local_master_uses_a_view_in_this_machines_node_cache(
    env: Env, tmp_path: Path, bare_bin: Path
) -> None:
    assert is_local_master("local[2]") and is_local_master("local")
    assert not is_local_master("local-cluster[1,1,1024]") and not is_local_master("yarn")
    cache = tmp_path / "cache"
    for mode in ("archives", "node-cache"):
        c = conf(env, mode, master="local[2]", cache_dir=str(cache))
        assert "spark.archives" not in c
        python = Path(c["spark.pyspark.python"])
        assert python.is_absolute() and python.is_relative_to(cache)
        out = _run_probe(python, _bare_env(bare_bin), cwd=tmp_path)
        assert out["prefix"] == str(cache / "envs" / env.env_id)
        assert out["mymod"] == "code"


def test_bad_mode_and_env_are_clear_errors(env: Env) -> None:
    with pytest.raises(EngineError, match="unknown Spark mode 'zip'"):
        conf(env, "zip")
    with pytest.raises(EnvshipError, match="neither an Env nor an env URI"):
        conf("", "archives")


def test_configure_keeps_the_list_confs_of_spark_defaults(env: Env, tmp_path: Path) -> None:
    """A conf set on the builder hides the same key in spark-defaults.conf: configure() takes
    its entries in, unless the builder has its own."""
    from pyspark.sql import SparkSession

    from envship.spark import configure

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("spark.archives /u/d.zip#d\n")
    with pytest.MonkeyPatch.context() as mp:  # configure() sets PYSPARK_PYTHON here
        mp.setenv("PYSPARK_PYTHON", "")
        mp.setenv("SPARK_CONF_DIR", str(tmp_path / "conf"))
        built = configure(SparkSession.builder, env, master="spark://h:1")
        archives = built._options["spark.archives"].split(",")
        assert archives[0] == "/u/d.zip#d" and archives[-1].endswith("#envship-boot")
        own = configure(SparkSession.builder.config("spark.archives", "/u/b.zip#b"), env,
                        master="spark://h:1")
        archives = own._options["spark.archives"].split(",")
        assert archives[0] == "/u/b.zip#b" and "/u/d.zip#d" not in archives


def test_list_helpers() -> None:
    assert merge_list("a,b", None, "b, c", "") == "a,b,c"
    assert hadoop_url("s3://bucket/x") == "s3a://bucket/x"
    assert hadoop_url("/local/path") == "/local/path"


def test_boot_archives_are_deterministic() -> None:
    a = node_cache_boot("3.11")
    b = node_cache_boot("3.11")
    assert a.data == b.data and a.file_name == b.file_name
    assert node_cache_boot("3.12").data != a.data


@pytest.mark.s3
def test_s3_store_gives_s3a_archives_or_presigned_urls_executors_can_fetch(
    moto: MotoServer, tmp_path: Path, bare_bin: Path
) -> None:
    env, options = s3_handmade_env(moto, LAYERS, tmp_path / "work")
    endpoint = options["endpoint_url"]

    # This pyspark has no S3A connector: the API presigns as `envship spark-submit` does
    auto = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot")
    assert all("Signature=" in e for e in auto["spark.archives"].split(",")[:2])
    # remote blobs stay archives: a <hex>.tar.gz in spark.files would be untarred by Spark
    c = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot",
             requested=["org.apache.hadoop:hadoop-aws:3.4.1"])  # --packages names S3A
    assert "spark.files" not in c
    layers = c["spark.archives"].split(",")[:2]
    s3a = env.store_url.replace("s3://", "s3a://", 1) + "/blobs/sha256/"
    assert all(e.startswith(s3a) for e in layers)
    assert c["spark.hadoop.fs.s3a.endpoint"] == endpoint
    assert "secret" not in json.dumps(c).lower()  # credentials never go into confs
    assert "spark.redaction.regex" not in c  # nothing to hide

    signed = conf(env, "archives", master="yarn", presign=True, boot_dir=tmp_path / "boot")
    entries = signed["spark.archives"].split(",")
    # hidden from Spark's UI and logs, keeping Spark's own patterns (and the user's, on a
    # builder: envship.spark.configure widens them)
    regex = signed["spark.redaction.regex"]
    assert regex.startswith("(?i)secret|password|token|") and re.search(regex, entries[0])
    from pyspark.sql import SparkSession

    from envship.spark import configure

    with pytest.MonkeyPatch.context() as mp:  # configure() sets PYSPARK_PYTHON here
        mp.setenv("PYSPARK_PYTHON", "")
        builder = configure(SparkSession.builder.config("spark.redaction.regex", "(?i)mine"),
                            env, master="yarn", presign=True)
    assert builder._options["spark.redaction.regex"] == "(?i)mine|" + SIGNED_URL_REGEX
    assert all(e.startswith(endpoint) and "Signature=" in e for e in entries[:2])
    root = tmp_path / "executor"
    import urllib.request

    for entry in entries[:2]:  # fetched over plain HTTP(S), as Spark's executors do
        url, _, alias = entry.partition("#")
        blob = tmp_path / f"{alias}.tar.gz"
        with urllib.request.urlopen(url) as resp:
            blob.write_bytes(resp.read())
        _unpack(f"{blob}#{alias}", root)
    _unpack(entries[2], root)
    out = _run_probe(root / "envship-boot" / "python", _bare_env(bare_bin), cwd=root)
    assert out["mymod"] == "code" and out["env_id"] == env.env_id

    # node-cache mode presigns object stores by default: a bare python3 (no fsspec) fetches it
    nc = conf(env, "node-cache", master="yarn", cache_dir=str(tmp_path / "cache"),
              boot_dir=tmp_path / "boot")
    ref = nc["spark.executorEnv.ENVSHIP_ENV"]
    assert ref.startswith(endpoint) and "Signature=" in ref
    _unpack(nc["spark.archives"], tmp_path / "nc")
    # The executor's python: the presigned URL stays off its command line (every user of the
    # node reads command lines) while the node runtime prepares the env.
    run = run_held_at_preparation(
        [str(tmp_path / "nc" / "envship-boot" / "python"), "-c", PROBE],
        _bare_env(bare_bin, ENVSHIP_ENV=ref, ENVSHIP_CACHE=str(tmp_path / "cache")),
        tmp_path / "cache", cwd=tmp_path,
    )
    assert "waiting for node cache lock" in run.waiting, run.waiting + run.stderr
    assert "envship_node.py -- python -c" in run.cmdline
    assert endpoint not in run.cmdline and "Signature" not in run.cmdline
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["prefix"] == str(tmp_path / "cache" / "envs" / env.env_id)


MERGED_LAYERS = [
    ("code", {"site-packages/mymod.py": b"WHERE = 'code'\n"}),
    ("dist", {
        "site-packages/nsp/a.py": b"WHERE = 'a'\n",
        "site-packages/zz_probe.pth": b"import os; os.environ['PTH_RAN'] = 'yes'\n",
        "site-packages/depmod.py": b"WHERE = 'deps'\n",
    }),
    # nsp/b.py finds a file of another distribution relative to its own __file__
    ("dist", {"site-packages/nsp/b.py": (
        b"import os\nWHERE = 'b+' + str(os.path.exists("
        b"os.path.join(os.path.dirname(__file__), 'a.py')))\n")}),
]


def _merged_env(tmp_path: Path) -> Env:
    """A package-granular env (one layer per distribution, as schema 2 has it)."""
    import sys

    from envship.packing.manifest import LayerRef, Manifest, PythonInfo
    from envship.store import open_store
    from kits.sparkkit import layer_blob

    refs, blobs = [], {}
    for i, (kind, files) in enumerate(MERGED_LAYERS):
        path, digest = layer_blob(files, tmp_path / "blobs")
        dists = () if kind == "code" else (f"dist{i}==1.0",)
        refs.append(LayerRef(kind, digest, path.stat().st_size, len(files), dists=dists,
                             bytecode="none"))
        blobs[digest] = path
    v = sys.version_info
    manifest = Manifest(PythonInfo("cpython", f"{v.major}.{v.minor}.{v.micro}",
                                   f"cp{v.major}{v.minor}", "linux_x86_64",
                                   sys.implementation.cache_tag), tuple(refs))
    store = open_store(str(tmp_path / "store"))
    result = store.publish(manifest, blobs)
    return Env(result.env_uri, manifest, store.url, {})


def test_archives_mode_merges_many_dist_layers_into_one_site(
    tmp_path: Path, bare_bin: Path
) -> None:
    env = _merged_env(tmp_path)
    c = conf(env, "archives", master="yarn", boot_dir=tmp_path / "boot")
    files = c["spark.files"].split(",")
    assert len(files) == len(MERGED_LAYERS)  # one file per blob; the boot is the one archive
    assert [Path(f).name for f in files] == [f"{lay.hex}.blob" for lay in env.manifest.layers]
    root = tmp_path / "executor"
    _deliver(c, root)
    probe = PROBE.replace("import mymod, depmod", "import mymod, depmod, nsp.a, nsp.b").replace(
        "'depmod': depmod.WHERE,", "'depmod': depmod.WHERE, 'ns': nsp.a.WHERE + nsp.b.WHERE, "
        "'site': os.path.dirname(mymod.__file__),")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda _: subprocess.run(
            [str(root / "envship-boot" / "python"), "-c", probe], env=_bare_env(bare_bin),
            cwd=root, capture_output=True, text=True, timeout=120), range(3)))
    for proc in outs:
        assert proc.returncode == 0, proc.stderr
    out = json.loads(outs[0].stdout)
    view = root / "envship-view"
    assert out["prefix"] == str(view) and out["env_id"] == env.env_id
    assert out["ns"] == "ab+True" and out["pth"] == "yes" and out["mymod"] == "code"
    site = view / "lib" / f"python{'{}.{}'.format(*__import__('sys').version_info[:2])}"
    assert out["site"] == str(site / "site-packages")
    assert not (site / "site-packages" / "_envship.pth").exists()
    linked = site / "site-packages" / "nsp" / "a.py"
    unpacked = root / "envship-cache" / "layers" / env.manifest.layers[1].hex
    assert os.stat(linked).st_ino == os.stat(unpacked / "site-packages/nsp/a.py").st_ino
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]


def test_blob_links_unused_for_long_are_swept(env: Env, tmp_path: Path) -> None:
    """The hard links spark.files serves hold disk space a store gc would free: one that no
    submission used for LINK_DAYS goes (with its stamp); the env's own links stay."""
    from envship.engines.spark.archives import LINK_DAYS

    boot = tmp_path / "boot"
    conf(env, "archives", master="yarn", boot_dir=boot)
    blobs = boot / "blobs"
    old = blobs / f"{'e' * 64}.blob"
    old.write_bytes(b"an env of long ago")
    stamp = blobs / f"{'e' * 64}.used"
    stamp.touch()
    aged = time.time() - (LINK_DAYS + 1) * 86400
    os.utime(stamp, (aged, aged))
    mine = [blobs / f"{lay.hex}.blob" for lay in env.manifest.layers]
    for lay in env.manifest.layers:  # this env's stamps are old too: this submission renews
        os.utime(blobs / f"{lay.hex}.used", (aged, aged))
    c = conf(env, "archives", master="yarn", boot_dir=boot)
    assert not old.exists() and not stamp.exists()
    assert all(p.exists() for p in mine)
    assert sorted(c["spark.files"].split(",")) == sorted(str(p) for p in mine)


@pytest.mark.s3
def test_an_env_uri_with_storage_options_works_in_every_mode(
    moto: MotoServer, tmp_path: Path, bare_bin: Path
) -> None:
    """envship.spark.conf/configure/session take storage_options for a URI string (a custom
    endpoint); local[...] prepares the view through a presigned manifest, since the node
    runtime reads its store without them."""
    env, options = s3_handmade_env(moto, LAYERS, tmp_path / "w")
    uri = env.uri
    endpoint = options["endpoint_url"]
    with pytest.raises(EnvshipError) as info:  # AWS's own endpoint: no such bucket there
        conf(uri, "archives", master="yarn", boot_dir=tmp_path / "boot")
    assert "\n" not in str(info.value)
    archives = conf(uri, "archives", master="yarn", boot_dir=tmp_path / "boot",
                    storage_options=options)
    assert all(e.startswith(endpoint) for e in archives["spark.archives"].split(",")[:2])
    nc = conf(uri, "node-cache", master="yarn", boot_dir=tmp_path / "boot",
              storage_options=options)
    assert nc["spark.executorEnv.ENVSHIP_ENV"].startswith(endpoint)
    cache = tmp_path / "cache"
    local = conf(uri, "archives", master="local[1]", cache_dir=str(cache),
                 storage_options=options)
    out = _run_probe(Path(local["spark.pyspark.python"]), _bare_env(bare_bin), cwd=tmp_path)
    assert out["mymod"] == "code" and out["prefix"].startswith(str(cache))


def test_boot_files_are_package_data_that_lint_and_run_alone(tmp_path: Path) -> None:
    """The boot program and the wrappers are real files: sh parses the wrappers, and the
    program imports nothing of envship (it runs where only the node runtime is)."""
    import ast

    from envship.engines.spark.base import boot_file

    for name in ("archives_python.sh", "node_cache_python.sh"):
        script = tmp_path / name
        script.write_text(boot_file(name))
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    tree = ast.parse(boot_file("archives_boot.py"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else
                              [ast.alias(node.module or "")])}
    node_runtime = {"envship_node", "_envship_node"}  # the single file, and what it serves
    assert "envship" not in imported and imported <= {
        "__future__", "contextlib", "json", "os", "sys", "time", "typing", *node_runtime}
