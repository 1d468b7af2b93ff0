"""The private properties file of `envship spark-submit`: Java escaping, and how it takes the
user's properties file or spark-defaults.conf in (Spark 3 copies, Spark 4 a flag)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envship.engines.spark import properties
from envship.engines.spark.command import SubmitCommand, split_signed
from envship.engines.spark.installation import spark_version
from envship.errors import EngineError

SIGNED = "http://127.0.0.1:1/b/blobs/x.tar.gz?X-Amz-Signature=abc&X-Amz-Credential=k#envship-x"


def test_escaping_round_trips_through_the_java_rules() -> None:
    props = {
        "spark.a b=c:d#e!f": "plain",
        "spark.path": "C:\\dir\\file",
        "spark.lead": "  two leading blanks, = and : and # kept",
        "spark.lines": "one\ntwo\r\tthree",
        "spark.utf8": "café ☃ 😀",
        "spark.url": SIGNED,
    }
    text = properties.dumps(props)
    assert "spark.a\\ b\\=c\\:d\\#e\\!f=plain" in text  # a key ends at a bare = : or blank
    assert "spark.path=C:\\\\dir\\\\file" in text
    assert "spark.lead=\\  two leading blanks" in text  # else Java drops them
    assert "spark.lines=one\\ntwo\\r\\tthree" in text
    assert f"spark.url={SIGNED}\n" in text  # a URL stays readable
    assert properties.dumps(dict(reversed(props.items()))) == text  # sorted: same bytes
    back = properties.loads(text)
    # Spark trims values (a leading blank in a value survives only where Java keeps it)
    assert back == {**props, "spark.lead": props["spark.lead"].strip()}


def test_reads_what_java_reads() -> None:
    text = (
        "# comment\n! also a comment\n\n"
        "spark.master   spark://h:7077\n"
        "spark.colon:x\n"
        "  spark.cont = first, \\\n      second\n"
        "spark.escaped\\ key = \\u00e9\\t\\\\\n"
        "spark.master=local[2]\r\n"  # later wins
        "spark.empty\n"
    )
    assert properties.loads(text) == {
        "spark.master": "local[2]", "spark.colon": "x", "spark.cont": "first, second",
        "spark.escaped key": "é\t\\", "spark.empty": "",
    }
    with pytest.raises(EngineError, match="malformed"):
        properties.loads("k=\\u12")


def test_private_file_is_0600_in_a_0700_dir_and_gone_after() -> None:
    with properties.private_file({"spark.k": "v"}) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert properties.read(path) == {"spark.k": "v"}
    assert not os.path.exists(os.path.dirname(path))
    with pytest.raises(RuntimeError), properties.private_file({"spark.k": "v"}) as path:
        raise RuntimeError
    assert not os.path.exists(os.path.dirname(path))


def test_directories_of_killed_runs_are_swept_by_the_next(tmp_path: Path) -> None:
    """`kill -9` during spark-submit leaves the private directory (and its signed URLs):
    the next run removes it once it is old and its pid has no process; nothing else."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - properties.STALE_SECONDS - 60

    def leftover(name: str, age: float = old) -> Path:
        d = tmp_path / name
        d.mkdir(mode=0o700)
        (d / "spark.properties").write_text("spark.envship.env=http://x?X-Amz-Signature=s\n")
        os.utime(d, (age, age))
        return d

    stale = leftover(f"envship-spark-{dead.pid}-abc")
    live = leftover(f"envship-spark-{os.getpid()}-def")  # a running spark-submit
    fresh = leftover(f"envship-spark-{dead.pid}-ghi", time.time())  # maybe another pid ns
    other = leftover("envship-spark-notapid")
    assert properties.sweep_stale(str(tmp_path)) == 1
    assert not stale.exists()
    assert live.exists() and fresh.exists() and other.exists()


def _spark_home(tmp_path: Path, release: str | None = None, jar: str | None = None) -> Path:
    home = tmp_path / "spark"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "spark-defaults.conf").write_text(
        "spark.master yarn\nspark.executor.memory 3g\nspark.envship.env default-loses\n"
    )
    if release:
        (home / "RELEASE").write_text(release)
    if jar:
        (home / "jars").mkdir()
        (home / "jars" / jar).write_bytes(b"")
    return home


def _split(home: Path, spark_args: tuple[str, ...] = (), props: str | None = None,
           confs: dict[str, str] | None = None) -> SubmitCommand:
    confs = confs or {"spark.envship.env": SIGNED, "spark.pyspark.python": "./py"}
    return split_signed(["spark-submit"], confs, spark_args, ["app.py", "1"], spark_home=home,
                        properties_file=props)


def test_spark_version_from_release_or_core_jar(tmp_path: Path) -> None:
    release = "Spark 3.5.1 built for Hadoop 3.3.4\n"
    assert spark_version(_spark_home(tmp_path / "a", release)) == (3, 5)
    assert spark_version(_spark_home(tmp_path / "b", jar="spark-core_2.13-4.0.1.jar")) == (4, 0)
    assert spark_version(_spark_home(tmp_path / "c")) is None


def test_spark_3_copies_spark_defaults_under_our_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    home = _spark_home(tmp_path, "Spark 3.5.1 built for Hadoop 3.3.4\n")
    cmd = _split(home)
    assert cmd.properties == {"spark.master": "yarn", "spark.executor.memory": "3g",
                              "spark.envship.env": SIGNED}  # ours on top
    argv = cmd.argv("/p")
    assert argv == ["spark-submit", "--conf", "spark.pyspark.python=./py",
                    "--properties-file", "/p", "app.py", "1"]
    assert "--load-spark-defaults" not in argv
    # SPARK_CONF_DIR wins over the installation's conf/, as in spark-submit
    other = tmp_path / "confdir"
    other.mkdir()
    (other / "spark-defaults.conf").write_text("spark.master=k8s://h\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(other))
    assert _split(home).properties["spark.master"] == "k8s://h"


def test_spark_3_without_spark_defaults_warns_that_none_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    home = _spark_home(tmp_path, "Spark 3.5.1 built for Hadoop 3.3.4\n")
    (home / "conf" / "spark-defaults.conf").unlink()
    caplog.set_level(logging.WARNING, logger="envship")
    cmd = _split(home)
    assert cmd.properties == {"spark.envship.env": SIGNED} and cmd.merged is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert "no spark-defaults.conf found" in warned[0] and "Spark 3.5 reads no" in warned[0]
    assert "SPARK_CONF_DIR" in warned[0]
    caplog.clear()  # unknown version: said so; a found file: no warning
    (home / "RELEASE").unlink()
    _split(home)
    assert "Spark of unknown version reads no" in caplog.text
    caplog.clear()
    (home / "conf" / "spark-defaults.conf").write_text("spark.master yarn\n")
    assert _split(home).properties["spark.master"] == "yarn"
    assert not caplog.records


def test_spark_4_adds_the_flag_and_copies_nothing(tmp_path: Path) -> None:
    home = _spark_home(tmp_path, jar="spark-core_2.13-4.3.0.jar")
    cmd = _split(home)
    assert cmd.properties == {"spark.envship.env": SIGNED}
    assert cmd.argv("/p")[-5:] == ["--load-spark-defaults", "--properties-file", "/p", "app.py",
                                   "1"]
    given = _split(home, ("--load-spark-defaults",))  # not twice
    assert given.argv("/p").count("--load-spark-defaults") == 1


def test_users_properties_file_is_merged_and_no_defaults_added(tmp_path: Path) -> None:
    home = _spark_home(tmp_path, jar="spark-core_2.13-4.3.0.jar")
    theirs = tmp_path / "mine.properties"
    theirs.write_text("spark.executor.cores=4\nspark.envship.env=theirs-loses\n")
    cmd = _split(home, props=str(theirs))
    # Spark read no defaults with their file (no --load-spark-defaults): it still does not
    assert cmd.properties == {"spark.executor.cores": "4", "spark.envship.env": SIGNED}
    argv = cmd.argv("/p")
    assert str(theirs) not in argv and "--load-spark-defaults" not in argv
    assert cmd.merged == str(theirs)
    shown = cmd.shown()
    assert "X-Amz-Signature" not in shown and "0600" in shown and str(theirs) in shown
    assert "X-Amz-Signature=abc" in cmd.shown(show_signatures=True)
    with pytest.raises(EngineError, match="cannot read properties file"):
        _split(home, props=str(tmp_path / "missing.properties"))


def test_without_signed_confs_the_command_line_is_as_before(tmp_path: Path) -> None:
    home = _spark_home(tmp_path, jar="spark-core_2.13-4.3.0.jar")
    cmd = _split(home, props="mine.properties", confs={"spark.pyspark.python": "./py"})
    assert not cmd.properties
    assert cmd.argv() == ["spark-submit", "--conf", "spark.pyspark.python=./py",
                          "--properties-file", "mine.properties", "app.py", "1"]
