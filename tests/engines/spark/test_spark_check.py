"""The driver/executor agreement checks, without a JVM: code drift against the code layer,
and the executor report function running where envship is not installed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envship.drift import code_drift, require_code_match
from envship.engines.spark.reports import executor_reports, require_executors_in_env
from envship.errors import EngineError
from kits.sparkkit import handmade_env

CODE = {
    "site-packages/driftpkg/__init__.py": b"VALUE = 1\n",
    "site-packages/driftpkg/sub.py": b"def f():\n    return 1\n",
    "site-packages/driftpkg-0.1.dist-info/METADATA": b"Name: driftpkg\n",
    "site-packages/jobmod.py": b"X = 1\n",
}


def _checkout(root: Path) -> Path:
    for rel, data in CODE.items():
        if "dist-info" in rel:
            continue
        path = root / rel.removeprefix("site-packages/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_code_drift_detects_edits_and_deletions(tmp_path: Path) -> None:
    env = handmade_env(str(tmp_path / "store"), {"code": CODE}, tmp_path / "w")
    src = _checkout(tmp_path / "src")
    drift = require_code_match(env, [str(src)])
    assert drift.ok and drift.compared == 3  # dist-info is metadata, not code

    (src / "driftpkg" / "sub.py").write_text("def f():\n    return 2\n")
    (src / "jobmod.py").unlink()
    (src / "jobmod.py").write_text("X = 1\n")  # same bytes again: not a change
    (src / "driftpkg" / "__init__.py").unlink()
    (src / "driftpkg" / "__init__.py").touch()
    drift = code_drift(env, [str(src)])
    assert drift.changed == ("driftpkg/__init__.py", "driftpkg/sub.py")
    with pytest.raises(EngineError, match=r"local code differs from env .*driftpkg/sub.py"):
        require_code_match(env, [str(src)])


def test_code_drift_skips_code_it_cannot_find_locally(tmp_path: Path) -> None:
    env = handmade_env(str(tmp_path / "store"), {"code": CODE}, tmp_path / "w")
    drift = code_drift(env, [str(tmp_path / "elsewhere")])
    assert drift.ok and drift.compared == 0


class _FakeRDD:
    def __init__(self, n: int, capture: list[Callable[..., Any]]) -> None:
        self.n, self.capture, self.func = n, capture, None

    def mapPartitions(self, func: Callable[..., Any]) -> _FakeRDD:  # noqa: N802
        self.capture.append(func)
        self.func = func
        return self

    def collect(self) -> list[Any]:
        assert self.func is not None
        return [row for _ in range(self.n) for row in self.func(iter([0]))]


class _FakeSpark:
    def __init__(self) -> None:
        self.captured: list[Callable[..., Any]] = []
        outer = self

        class _SC:
            defaultParallelism = 2  # noqa: N815

            def parallelize(self, data: Any, n: int) -> _FakeRDD:
                return _FakeRDD(n, outer.captured)

        self.sparkContext = _SC()


def test_executor_report_is_pickled_by_value_and_runs_without_envship(
    tmp_path: Path, bare_bin: Path
) -> None:
    from pyspark import cloudpickle
    from pyspark.find_spark_home import _find_spark_home

    spark = _FakeSpark()
    reports = executor_reports(spark)
    assert len(reports) == 2 and reports[0].env_id is None  # this process is no env view
    with pytest.raises(EngineError, match="executors do not run env"):
        require_executors_in_env(spark, "f" * 64)

    payload = tmp_path / "report.pickle"
    payload.write_bytes(cloudpickle.dumps(spark.captured[0]))
    lib = Path(_find_spark_home()) / "python" / "lib"
    pythonpath = ":".join(str(p) for p in sorted(lib.glob("*.zip")))
    view = tmp_path / "view"
    view.mkdir()
    (view / "envship-env-id").write_text("a" * 64 + "\n")
    # like an executor: pyspark from the Spark runtime's zips, envship nowhere on the path
    proc = subprocess.run(
        [str(bare_bin / "python"), "-c",
         "import sys; sys.prefix = sys.argv[2]\n"
         "from pyspark import cloudpickle\n"
         "f = cloudpickle.loads(open(sys.argv[1], 'rb').read())\n"
         "import importlib.util as u; assert u.find_spec('envship') is None\n"
         "print(list(f(iter([0]))))",
         str(payload), str(view)],
        env={"PYTHONPATH": pythonpath, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "a" * 64 in proc.stdout


def test_code_drift_ignores_a_project_dir_named_like_its_package(tmp_path: Path) -> None:
    env = handmade_env(str(tmp_path / "store"), {"code": CODE}, tmp_path / "w")
    job_dir = tmp_path / "job"
    (job_dir / "driftpkg").mkdir(parents=True)  # the checkout, holding src/driftpkg/...
    (job_dir / "driftpkg" / "pyproject.toml").write_text("[project]\nname = 'driftpkg'\n")
    _checkout(job_dir / "driftpkg" / "src")
    import sys

    sys.path.insert(0, str(job_dir / "driftpkg" / "src"))  # as an editable install does
    try:
        drift = require_code_match(env, [str(job_dir)])
    finally:
        sys.path.remove(str(job_dir / "driftpkg" / "src"))
    assert drift.ok and drift.compared == 3  # found in src/, not the bare job_dir/driftpkg


def test_code_drift_covers_every_code_layer_and_ignores_bytecode(tmp_path: Path) -> None:
    """Schema 2: one code layer per local project, each with its .pyc files inside."""
    import sys

    from envship.env import Env
    from envship.packing.manifest import Distribution, LayerRef, Manifest, PythonInfo
    from envship.store import open_store
    from kits.sparkkit import layer_blob

    tag = sys.implementation.cache_tag
    one = {k: v for k, v in CODE.items() if "driftpkg" in k}
    one[f"site-packages/driftpkg/__pycache__/sub.{tag}.pyc"] = b"\x00" * 16
    two = {"site-packages/jobmod.py": CODE["site-packages/jobmod.py"],
           f"site-packages/__pycache__/jobmod.{tag}.pyc": b"\x01" * 16}
    refs, blobs, dists = [], {}, []
    for name, files in (("driftpkg", one), ("jobmod", two)):
        path, digest = layer_blob(files, tmp_path / "blobs")
        refs.append(LayerRef("code", digest, path.stat().st_size, len(files),
                             dists=(f"{name}==0.1",), bytecode="packed"))
        dists.append(Distribution(name, "0.1", "editable", digest))
        blobs[digest] = path
    v = sys.version_info
    manifest = Manifest(PythonInfo("cpython", f"{v.major}.{v.minor}.{v.micro}",
                                   f"cp{v.major}{v.minor}", "linux_x86_64", tag),
                        tuple(refs), tuple(dists))
    assert manifest.schema_id == "envship.manifest/2"
    store = open_store(str(tmp_path / "store"))
    env = Env(store.publish(manifest, blobs).env_uri, manifest, store.url, {})
    src = _checkout(tmp_path / "src")
    drift = require_code_match(env, [str(src)])
    assert drift.ok and drift.compared == 3  # both layers; no .pyc compared
    (src / "jobmod.py").write_text("X = 2\n")  # an edit in the second project's layer
    assert code_drift(env, [str(src)]).changed == ("jobmod.py",)


def test_spark_submit_dry_run_checks_local_code_as_a_real_run_does(tmp_path: Path) -> None:
    """--dry-run prints the command a real run would run, or refuses as it would."""
    import subprocess
    import sys

    envship = str(Path(sys.executable).parent / "envship")
    env = handmade_env(str(tmp_path / "store"), {"code": CODE}, tmp_path / "w")
    app_dir = _checkout(tmp_path / "job")
    app = app_dir / "job.py"
    app.write_text("import jobmod\n")

    def dry_run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [envship, "spark-submit", env.uri, *extra, "--dry-run", "--master", "spark://h:1",
             str(app)], capture_output=True, text=True, cwd=tmp_path)

    same = dry_run()
    assert same.returncode == 0 and "spark-submit" in same.stdout, same.stderr
    (app_dir / "jobmod.py").write_text("X = 2\n")  # edited, not re-shipped
    edited = dry_run()
    assert edited.returncode == 1 and edited.stdout == ""
    assert "local code differs" in edited.stderr and "jobmod.py (changed)" in edited.stderr
    assert len(edited.stderr.strip().splitlines()) <= 2 and "Traceback" not in edited.stderr
    skipped = dry_run("--no-check")
    assert skipped.returncode == 0 and "spark-submit" in skipped.stdout


def test_dask_and_ray_use_the_same_drift_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code drift is not Spark's: envship.dask.cluster and envship.ray.check refuse an env whose
    code was edited locally before they start or ask anything."""
    import sys

    import envship.dask
    import envship.ray

    env = handmade_env(str(tmp_path / "store"), {"code": CODE}, tmp_path / "w")
    src = _checkout(tmp_path / "src")
    (src / "jobmod.py").write_text("X = 2\n")
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setitem(sys.modules, "ray", None)  # no Ray needed to see the drift
    with pytest.raises(EngineError, match=r"local code differs .*jobmod.py \(changed\)"):
        envship.ray.check(env)
    pytest.importorskip("distributed")
    with pytest.raises(EngineError, match=r"local code differs .*jobmod.py \(changed\)"), \
            envship.dask.cluster(env, 1):
        pass
