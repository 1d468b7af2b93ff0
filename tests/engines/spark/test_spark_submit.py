"""`envship spark-submit`: argument splitting, the command it builds, pass-through, exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envship.engines.spark import properties
from envship.engines.spark.submit import SubmitOptions, split_args
from envship.errors import EngineError
from kits.sparkkit import handmade_env, s3_handmade_env
from kits.support import MotoServer

ENVSHIP = str(Path(sys.executable).parent / "envship")


def test_split_args_separates_envship_spark_and_app_args() -> None:
    args = [
        "--mode", "node-cache", "--master", "spark://h:7077", "--conf", "spark.x=1",
        "--archives", "a.tgz#a", "--conf", "spark.archives=b.tgz#b", "-v", "--no-check",
        "--deploy-mode=client", "--expires", "60", "-s", "endpoint_url=http://h:1",
        "--storage-option=anon=true", "job.py", "--mode", "app-value", "--no-check",
    ]
    submit, opts = split_args(args, SubmitOptions())
    assert opts.mode == "node-cache" and opts.check is False and opts.expires == 60
    assert opts.storage_options == ("endpoint_url=http://h:1", "anon=true")
    assert submit.app == "job.py"
    assert submit.app_args == ("--mode", "app-value", "--no-check")  # the app's, untouched
    assert submit.master == "spark://h:7077" and submit.deploy_mode == "client"
    assert submit.lists == {"spark.archives": "a.tgz#a,b.tgz#b"}
    assert submit.spark_args == (
        "--master", "spark://h:7077", "--conf", "spark.x=1", "-v", "--deploy-mode", "client"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--master", "yarn"], "no application given"),
        (["--master"], "needs a value"),
        (["--conf", "novalue", "a.py"], "expected --conf key=value"),
        (["--expires", "soon", "a.py"], "expected seconds"),
    ],
)
def test_split_args_errors(args: list[str], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        split_args(args, SubmitOptions())


@pytest.fixture(autouse=True)
def _in_a_job_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The application files the commands name (`app.py`, `job.py`), in the directory they
    run from: spark-submit is refused a job file that is not there."""
    for name in ("app.py", "job.py"):
        (tmp_path / name).write_text("print('job')\n")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_spark_home(tmp_path: Path) -> Path:
    """A SPARK_HOME whose bin/spark-submit records its argv (and the mode and text of its
    --properties-file, in ARGV_OUT.props) and exits 3."""
    home = tmp_path / "spark-home"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "spark-submit"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "import signal, time\n"
        "out = os.environ['ARGV_OUT']\n"
        "def on_term(signum, frame):\n"
        "    open(out + '.term', 'w').write(json.dumps(signum))\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open(out, 'w').write(json.dumps(sys.argv[1:]))\n"
        "if '--properties-file' in sys.argv:\n"
        "    path = sys.argv[sys.argv.index('--properties-file') + 1]\n"
        "    props = {'mode': os.stat(path).st_mode & 0o777, 'text': open(path).read(),\n"
        "             'path': path}\n"
        "    open(out + '.props', 'w').write(json.dumps(props))\n"
        "if os.environ.get('FAKE_SLEEP'):\n"
        "    time.sleep(float(os.environ['FAKE_SLEEP']))\n"
        "sys.exit(3)\n"
    )
    script.chmod(0o755)
    return home


def submitted_confs(out: Path) -> dict[str, str]:
    """The confs the fake spark-submit got: its --conf arguments, over its properties file."""
    argv = json.loads(out.read_text())
    confs = {}
    props = Path(f"{out}.props")
    if "--properties-file" in argv:
        confs.update(properties.loads(json.loads(props.read_text())["text"]))
    confs.update(v.split("=", 1) for k, v in zip(argv, argv[1:], strict=False) if k == "--conf")
    props.unlink(missing_ok=True)
    return confs


def test_cli_passes_everything_through_and_returns_spark_submits_exit_code(
    tmp_path: Path, fake_spark_home: Path
) -> None:
    env = handmade_env(str(tmp_path / "store"), {"deps": {"site-packages/x.py": b""}},
                       tmp_path / "w")
    app = tmp_path / "app.py"
    app.write_text("print('hi')\n")
    out = tmp_path / "argv.json"
    run_env = dict(os.environ, SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out))
    proc = subprocess.run(
        [ENVSHIP, "-v", "spark-submit", env.uri, "--mode", "archives",
         "--master", "spark://127.0.0.1:7077", "--archives", "extra.tgz#extra",
         "--conf", "spark.executor.memory=1g", str(app), "--mode", "x", "1"],
        env=run_env, capture_output=True, text=True,
    )
    assert proc.returncode == 3, proc.stderr
    argv = json.loads(out.read_text())
    assert "spark-submit" in proc.stderr  # -v prints the command
    assert argv[-4:] == [str(app), "--mode", "x", "1"]
    confs = dict(a.split("=", 1) for a in argv[argv.index("--conf") :: 1] if "=" in a)
    assert confs["spark.pyspark.python"] == "./envship-boot/python"
    assert confs["spark.pyspark.driver.python"] == sys.executable
    assert confs["spark.envship.envId"] == env.env_id
    archives = confs["spark.archives"].split(",")
    assert archives == ["extra.tgz#extra", archives[-1]] and archives[-1].endswith("#envship-boot")
    # a local store's blob goes as a plain file (<hex>.blob: Spark untars *.tar.gz files)
    (deps,) = env.manifest.layers
    (blob,) = confs["spark.files"].split(",")
    assert Path(blob).name == f"{deps.hex}.blob"
    assert Path(blob).read_bytes() == Path(env.store().blob_url(deps.digest)).read_bytes()
    assert "spark.executor.memory=1g" in argv


def test_cli_dry_run_and_errors(tmp_path: Path, fake_spark_home: Path) -> None:
    env = handmade_env(str(tmp_path / "store"), {"deps": {"site-packages/x.py": b""}},
                       tmp_path / "w")
    run_env = dict(os.environ, SPARK_HOME=str(fake_spark_home))
    proc = subprocess.run(
        [ENVSHIP, "spark-submit", "--dry-run", env.uri, "--mode", "node-cache", "job.py"],
        env=run_env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--master 'local[*]'" in proc.stdout  # spark-submit's default master is local
    assert "spark.pyspark.python=" in proc.stdout
    bad = subprocess.run(
        [ENVSHIP, "spark-submit", env.uri, "--mode", "zip", "job.py"],
        env=run_env, capture_output=True, text=True,
    )
    assert bad.returncode == 1 and "unknown Spark mode 'zip'" in bad.stderr
    missing = subprocess.run(
        [ENVSHIP, "spark-submit", str(tmp_path / "store" / "envs" / ("0" * 64 + ".json")),
         "job.py"],
        env=run_env, capture_output=True, text=True,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    # what spark-submit would refuse with a Java stack trace, refused in one line (dry run too)
    for args, said in ((["--master", "spark:/h:7077", "job.py"], "not a Spark master URL"),
                       (["--master", "nonsense", "job.py"], "not a Spark master URL"),
                       (["--master", "local[2]", "nojob.py"], "application nojob.py not found"),
                       (["--mode", "pex", "job.py"], "is an env: drop --mode pex")):
        refused = subprocess.run([ENVSHIP, "spark-submit", "--dry-run", env.uri, *args],
                                 env=run_env, capture_output=True, text=True)
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_list_confs_from_the_users_files_are_kept_beside_envships(
    tmp_path: Path, fake_spark_home: Path
) -> None:
    """A `--conf spark.files=…` on the command line beats the same key in a properties file or
    spark-defaults.conf: envship's entries must be merged with the user's there too."""
    env = handmade_env(str(tmp_path / "store"), {"deps": {"site-packages/x.py": b""}},
                       tmp_path / "w")
    out = tmp_path / "argv.json"
    run_env = {k: v for k, v in os.environ.items() if k != "SPARK_CONF_DIR"}
    run_env.update(SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out))
    (fake_spark_home / "conf").mkdir()
    (fake_spark_home / "conf" / "spark-defaults.conf").write_text(
        "spark.files /u/defaults.csv\n")
    mine = tmp_path / "my.props"
    mine.write_text("spark.archives=/u/x.zip#x\nspark.files=/u/data.csv\n")

    def submitted(*extra: str) -> dict[str, str]:
        proc = subprocess.run(
            [ENVSHIP, "spark-submit", env.uri, *extra, "--master", "spark://h:1", "app.py"],
            env=run_env, capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        return submitted_confs(out)

    (deps,) = env.manifest.layers
    confs = submitted("--properties-file", str(mine))  # Spark reads no defaults then
    assert confs["spark.archives"].split(",")[0] == "/u/x.zip#x"
    assert confs["spark.archives"].endswith("#envship-boot")
    files = confs["spark.files"].split(",")
    assert files[0] == "/u/data.csv" and files[1].endswith(f"{deps.hex}.blob")
    confs = submitted()  # spark-defaults.conf's
    assert confs["spark.files"].split(",")[0] == "/u/defaults.csv"
    confs = submitted("--files", "/u/cli.csv")  # the command line's, as Spark takes it
    assert confs["spark.files"].split(",")[0] == "/u/cli.csv"
    assert "/u/defaults.csv" not in confs["spark.files"]


def test_redacted_list_confs_keep_every_entry_and_alias() -> None:
    """--dry-run shows a presigned spark.archives: each URL's signature goes, the entries
    after it and their #aliases stay."""
    from envship.store import redact_signed_urls

    value = ("spark.archives=http://h/b/1.tar.gz?X-Amz-Signature=abc&X-Amz-Expires=9#dist-1,"
             "/tmp/boot.tar.gz#envship-boot,https://u:pw@h/2.tar.gz?sig=zz#dist-2")
    assert redact_signed_urls(value) == (
        "spark.archives=http://h/b/1.tar.gz?<signature redacted>#dist-1,"
        "/tmp/boot.tar.gz#envship-boot,https://h/2.tar.gz?<signature redacted>#dist-2")


def test_envship_spark_is_lazy_and_does_not_import_pyspark() -> None:
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, envship\n"
         "assert 'envship.spark' not in sys.modules\n"
         "envship.spark.conf, envship.spark.session, envship.spark.configure\n"
         "import envship.engines.spark\n"
         "print('pyspark' in sys.modules)"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.s3
def test_cli_reads_an_s3_env_with_storage_options_after_env_uri(
    moto: MotoServer, tmp_path: Path, fake_spark_home: Path
) -> None:
    env, options = s3_handmade_env(moto, {"deps": {"site-packages/x.py": b""}}, tmp_path / "w")
    out = tmp_path / "argv.json"
    proc = subprocess.run(
        [ENVSHIP, "spark-submit", env.uri, "-s", f"endpoint_url={options['endpoint_url']}",
         "--presign", "--master", "spark://h:1", "app.py"],
        env=dict(os.environ, SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out)),
        capture_output=True, text=True,
    )
    assert proc.returncode == 3, proc.stderr
    argv = json.loads(out.read_text())
    assert "-s" not in argv  # envship's option, not spark-submit's
    archives = submitted_confs(out)["spark.archives"]
    store = env.store_url.removeprefix("s3://")
    assert f"{options['endpoint_url']}/{store}/blobs/sha256/" in archives
    assert "Signature=" in archives and "Signature=" not in " ".join(argv)


@pytest.mark.s3
def test_s3_env_is_presigned_when_this_spark_has_no_s3a_connector(
    moto: MotoServer, tmp_path: Path, fake_spark_home: Path
) -> None:
    """A stock `pip install pyspark` cannot read s3a://: the archives become presigned HTTPS
    URLs, with a one-line notice; with hadoop-aws in SPARK_HOME/jars they stay s3a://."""
    env, options = s3_handmade_env(moto, {"deps": {"site-packages/x.py": b""}}, tmp_path / "w")
    out = tmp_path / "argv.json"
    run_env = dict(os.environ, SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out))
    # a Spark that reads its defaults beside a properties file (no "defaults not read" line)
    (fake_spark_home / "RELEASE").write_text("Spark 4.0.0 built for Hadoop 3.4.1\n")

    def submit(*extra: str) -> tuple[str, str]:
        proc = subprocess.run(
            [ENVSHIP, "spark-submit", env.uri, "-s", f"endpoint_url={options['endpoint_url']}",
             *extra, "--master", "spark://h:1", "app.py"],
            env=run_env, capture_output=True, text=True,
        )
        assert proc.returncode == 3, proc.stderr
        return submitted_confs(out)["spark.archives"], proc.stderr

    archives, err = submit()
    assert "Signature=" in archives and "s3a://" not in archives
    assert "no S3A connector" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    archives, err = submit("--no-presign")
    s3a = env.store_url.replace("s3://", "s3a://", 1) + "/blobs/sha256/"
    assert s3a in archives and "Signature=" not in archives
    (fake_spark_home / "jars").mkdir()
    (fake_spark_home / "jars" / "hadoop-aws-3.4.1.jar").write_bytes(b"")
    archives, err = submit()
    assert s3a in archives and "S3A" not in err


@pytest.mark.s3
def test_presigned_confs_are_redacted_in_spark_and_the_users_patterns_kept(
    moto: MotoServer, tmp_path: Path, fake_spark_home: Path
) -> None:
    """Spark shows a conf in its UI, REST API and event logs unless spark.redaction.regex
    matches its key or value: the presigned ones must match, and a regex the user set in
    spark-defaults.conf keeps its own patterns."""
    import re

    from envship.engines.spark.base import SIGNED_URL_REGEX

    env, options = s3_handmade_env(moto, {"deps": {"site-packages/x.py": b""}}, tmp_path / "w")
    out = tmp_path / "argv.json"
    (fake_spark_home / "RELEASE").write_text("Spark 4.0.0 built for Hadoop 3.4.1\n")
    (fake_spark_home / "conf").mkdir()
    (fake_spark_home / "conf" / "spark-defaults.conf").write_text(
        "spark.redaction.regex (?i)secret|mytoken\n")
    run_env = {k: v for k, v in os.environ.items() if k != "SPARK_CONF_DIR"}
    run_env.update(SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out))
    proc = subprocess.run(
        [ENVSHIP, "spark-submit", env.uri, "-s", f"endpoint_url={options['endpoint_url']}",
         "--presign", "--master", "spark://h:1", "app.py"],
        env=run_env, capture_output=True, text=True,
    )
    assert proc.returncode == 3, proc.stderr
    confs = submitted_confs(out)
    regex = confs["spark.redaction.regex"]
    assert regex == f"(?i)secret|mytoken|{SIGNED_URL_REGEX}"
    signed = [v for v in confs.values() if "Signature=" in v]
    assert signed and all(re.search(regex, v) for v in signed)
    assert not re.search(regex, confs["spark.pyspark.python"])
    assert not re.search(regex, confs["spark.envship.envId"])


def _descends_from(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            stat_line = Path(f"/proc/{pid}/stat").read_bytes()
            pid = int(stat_line.rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def _watch_command_lines(root: int, seen: dict[int, set[str]], stop: threading.Event) -> None:
    """Record every command line of every process below *root* until *stop*: what every user
    of the machine can read (a process that execs shows a new one under the same pid)."""
    others: set[int] = set()
    while not stop.is_set():
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in others:
                continue
            pid = int(name)
            if pid not in seen and not _descends_from(pid, root):
                others.add(pid)
                continue
            try:
                line = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if line:
                seen.setdefault(pid, set()).add(line.decode(errors="replace"))
        time.sleep(0.02)


@pytest.mark.s3
def test_presigned_env_runs_with_no_signature_on_any_command_line(
    moto: MotoServer, tmp_path: Path
) -> None:
    """A real spark-submit (pyspark's, local[1]) of an env given as a presigned manifest URL:
    the app sees the signed conf (read from the properties file), no process of spark-submit's
    tree shows a signature, and the file is gone after it exits."""
    env, _ = s3_handmade_env(moto, {"deps": {"site-packages/propsmod.py": b"VALUE = 41\n"}},
                             tmp_path / "w")
    env = env.presigned(expires=600)
    assert "Signature=" in env.uri
    app = tmp_path / "app.py"
    app.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "ref = spark.sparkContext.getConf().get('spark.envship.env')\n"
        "got = spark.sparkContext.parallelize([1]).map(\n"
        "    lambda x: __import__('propsmod').VALUE + x).collect()\n"
        "print('RESULT', 'Signature=' in ref, got)\n"
        "import urllib.request\n"  # what the Spark UI and its REST API show of the confs
        "sc = spark.sparkContext\n"
        "port = sc.uiWebUrl.rsplit(':', 1)[1]\n"
        "api = f'http://127.0.0.1:{port}/api/v1/applications/{sc.applicationId}/environment'\n"
        "shown = urllib.request.urlopen(api, timeout=30).read().decode()\n"
        "print('UI', 'X-Amz-' in shown, 'spark.envship.env' in shown, '(redacted)' in shown)\n"
        "spark.stop()\n"
    )
    run_env = {k: v for k, v in os.environ.items() if k not in ("SPARK_HOME", "SPARK_CONF_DIR")}
    run_env["ENVSHIP_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.Popen(
        [ENVSHIP, "spark-submit", env.uri, "--master", "local[1]", str(app)],
        env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    seen: dict[int, set[str]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_command_lines, args=(proc.pid, seen, stop))
    watcher.start()
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, err[-3000:]
    assert "RESULT True [42]" in out, out + err[-3000:]
    assert "UI False True True" in out  # listed, its value hidden by spark.redaction.regex
    below = [line for pid, lines in seen.items() if pid != proc.pid for line in lines]
    jvm = [line for line in below if "org.apache.spark.deploy.SparkSubmit" in line]
    assert jvm, below  # the driver JVM was seen
    assert not [line for line in below if "Signature" in line or "X-Amz-" in line]
    assert "--load-spark-defaults" in jvm[0]  # pyspark 4: spark-defaults.conf still read
    path = jvm[0].split("--properties-file ", 1)[1].split(" ", 1)[0]
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


@pytest.mark.s3
def test_sigterm_passes_on_and_leaves_no_properties_file(
    moto: MotoServer, tmp_path: Path, fake_spark_home: Path
) -> None:
    env, options = s3_handmade_env(moto, {"deps": {"site-packages/x.py": b""}}, tmp_path / "w")
    out = tmp_path / "argv.json"
    proc = subprocess.Popen(
        [ENVSHIP, "spark-submit", env.uri, "-s", f"endpoint_url={options['endpoint_url']}",
         "--presign", "--master", "spark://h:1", "app.py"],
        env=dict(os.environ, SPARK_HOME=str(fake_spark_home), ARGV_OUT=str(out),
                 FAKE_SLEEP="60"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    props = Path(f"{out}.props")
    deadline = time.monotonic() + 60
    while not props.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    path = Path(json.loads(props.read_text())["path"])
    assert path.exists() and json.loads(props.read_text())["mode"] == 0o600
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM  # envship ends by the signal, as before
    assert not path.parent.exists()
    child = json.loads(Path(f"{out}.term").read_text())  # spark-submit got it too
    assert child == signal.SIGTERM
