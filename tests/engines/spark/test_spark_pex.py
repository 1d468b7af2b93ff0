"""PEX envs for Spark: confs for cluster and local masters, and a real local session whose
executors import a package only the PEX holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envship.engines.spark import configure
from envship.engines.spark.conf import conf
from envship.engines.spark.local_cluster import StandaloneCluster
from envship.engines.spark.pex import is_pex
from envship.errors import EngineError
from kits.sparkkit import parse_result
from kits.support import run, uv_bin

REPO = Path(__file__).resolve().parents[3]
ENVSHIP = str(Path(sys.executable).parent / "envship")
SIX = "six==1.17.0"  # pure Python and small; the driver's job venv does not have it

DRIVER = textwrap.dedent(
    """\
    import json, os, sys
    import envship.spark
    from envship.engines.spark.pex import require_executors_run_pex
    from envship.errors import EngineError

    spark = envship.spark.session(sys.argv[1], master="local[1]")  # checks the executors

    def where(_):
        import os, sys, six
        yield six.__file__, os.environ.get("PEX"), sys.executable

    row = spark.sparkContext.parallelize([0], 1).mapPartitions(where).collect()[0]
    try:
        require_executors_run_pex(spark, "other.pex")
        wrong = None
    except EngineError as exc:
        wrong = str(exc)
    confs = dict(spark.sparkContext.getConf().getAll())
    spark.stop()
    print("RESULT " + json.dumps({"six": row[0], "pex": row[1], "wrong": wrong,
                                  "python": confs.get("spark.pyspark.python"),
                                  "mode": confs.get("spark.envship.mode")}))
    """
)


@pytest.fixture
def pex_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.pex"
    path.write_bytes(b"not really a pex: confs do not read it\n")
    return path


def test_pex_conf_cluster_and_local_masters(pex_file: Path) -> None:
    assert is_pex(pex_file) and is_pex("s3://b/x/app.pex?v=1") and not is_pex("/s/envs/a.json")
    cluster = conf(str(pex_file), master="spark://127.0.0.1:7077")
    assert cluster == {
        "spark.envship.env": str(pex_file),
        "spark.envship.mode": "pex",
        "spark.envship.pex": "app.pex",
        "spark.executorEnv.PEX_INHERIT_PATH": "fallback",
        "spark.files": str(pex_file),
        "spark.pyspark.python": "./app.pex",
        "spark.executorEnv.PEX_ROOT": "./.pex",
    }
    remote = conf("s3://bucket/envs/app.pex", "pex", master="yarn")
    assert remote["spark.files"] == "s3a://bucket/envs/app.pex"
    assert remote["spark.pyspark.python"] == "./app.pex"
    # local[...]: workers start outside any Spark working directory: the absolute path
    local = conf(str(pex_file), master="local[2]")
    assert local["spark.pyspark.python"] == str(pex_file)
    assert "spark.files" not in local and local["spark.envship.mode"] == "pex"
    with pytest.raises(EngineError, match="download"):
        conf("https://example.invalid/app.pex", master="local[1]")
    with pytest.raises(EngineError, match="not found"):
        conf(str(pex_file.with_name("missing.pex")), master="yarn")


def test_pex_files_merge_with_the_users(
    pex_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", "restored-by-monkeypatch")
    builder = SparkSession.Builder().config("spark.files", "hdfs:///data/lookup.csv")
    builder = configure(builder, str(pex_file), master="spark://127.0.0.1:7077")
    assert builder._options["spark.files"] == f"hdfs:///data/lookup.csv,{pex_file}"
    assert os.environ["PYSPARK_PYTHON"] == "./app.pex"
    # the CLI resolves the env through the same conf(): a .pex ENV_URI, user's --files kept
    app = tmp_path / "job.py"
    app.write_text("print('hi')\n")
    proc = subprocess.run(
        [ENVSHIP, "spark-submit", str(pex_file), "--dry-run", "--master",
         "spark://127.0.0.1:7077", "--files", "extra.txt", str(app)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"spark.files=extra.txt,{pex_file}" in proc.stdout
    assert "spark.pyspark.python=./app.pex" in proc.stdout


@pytest.fixture(scope="module")
def pex_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a job venv with pyspark and envship but no six, a PEX of six built by envship pack)."""
    base = tmp_path_factory.mktemp("spark-pex")
    venv = base / "jobvenv"
    run([uv_bin(), "venv", "-q", "-p", sys.executable, str(venv)])
    py = venv / "bin" / "python"
    import pyspark

    install = [uv_bin(), "pip", "install", "-q", "-p", str(py), "--link-mode", "hardlink"]
    args = [f"pyspark=={pyspark.__version__}", "-e", str(REPO)]
    if subprocess.run([*install, "--offline", *args], capture_output=True).returncode != 0:
        run([*install, *args])
    probe = run([str(py), "-c", "import importlib.util as u; print(u.find_spec('six'))"])
    assert probe.stdout.strip() == "None"
    (base / "requirements.txt").write_text(f"{SIX}\n")
    v = sys.version_info
    run([ENVSHIP, "pack", "-r", "requirements.txt", "--format", "pex", "--python-version",
         f"{v.major}.{v.minor}", "-o", "out"], cwd=base)
    pex = base / "out" / "env.pex"
    assert pex.is_file()
    return py, pex


@pytest.mark.spark
def test_local_session_runs_executors_in_the_pex(
    pex_job: tuple[Path, Path], tmp_path: Path
) -> None:
    py, pex = pex_job
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PEX_ROOT"] = str(tmp_path / "pex-root")  # the workers inherit it from the JVM
    proc = subprocess.run([str(py), "driver.py", str(pex)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = parse_result(proc.stdout)
    assert got["mode"] == "pex" and got["python"] == str(pex)
    assert got["pex"] == str(pex)
    six_file = str(got["six"])
    assert six_file.startswith(str(tmp_path / "pex-root")), six_file
    assert not six_file.startswith(str(py.parent.parent))
    assert "executors do not run other.pex" in str(got["wrong"])


GUIDE = REPO / "docs" / "migrating-from-cluster-pack.md"


def guide_pex_recipe() -> str:
    """The guide's "keep a PEX-based job" Python block, exactly as a reader copies it."""
    text = GUIDE.read_text()
    after = text[text.index("Keeping a PEX-based job as it is"):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


@pytest.mark.spark
def test_the_migration_guides_pex_recipe_runs_as_written(
    pex_job: tuple[Path, Path], spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    """An in-process SparkSession.builder (no spark-submit) on a standalone cluster whose
    python3 has neither six nor pyspark's PYTHONPATH-less import: the executors run the PEX."""
    py, pex = pex_job
    recipe = guide_pex_recipe()
    assert 'master("yarn")' in recipe and "hdfs:///user/me/envs/app.pex" in recipe
    master = spark_cluster.master_url
    driver = recipe.replace('master("yarn")', f"master({master!r})").replace(
        "hdfs:///user/me/envs/app.pex", str(pex)) + textwrap.dedent(
        """
        import json

        def where(_):
            import os, sys, six
            yield six.__file__, os.environ.get("PEX"), sys.executable

        row = spark.sparkContext.parallelize([0], 1).mapPartitions(where).collect()[0]
        spark.stop()
        print("RESULT " + json.dumps({"six": row[0], "pex": row[1]}))
        """)
    (tmp_path / "driver.py").write_text(driver)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYSPARK", "PEX"))}
    proc = subprocess.run([str(py), "driver.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = parse_result(proc.stdout)
    assert str(got["pex"]).endswith("/env.pex"), got
    assert "/.pex/" in str(got["six"])  # six from the PEX, unpacked under its PEX_ROOT
