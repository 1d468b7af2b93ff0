"""What a new user hits, through the real `envship` command line (in this process where the
process itself is not what a test is about: kits/clikit.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kits.clikit import ENVSHIP, envship, envship_process
from kits.support import make_venv


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def bare_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    make_venv(venv)
    return venv


@pytest.fixture
def bare_venv(bare_template: Path, tmp_path: Path) -> Path:
    """A venv with only pip / setuptools / wheel (a copy: tests may change it)."""
    shutil.copytree(bare_template, tmp_path / "venv1", symlinks=True)
    return tmp_path / "venv1"


def _dist_names(store: Path) -> set[str]:
    (manifest,) = [p for p in (store / "envs").glob("*.json") if p.name.count(".") == 1]
    return {d["name"] for d in json.loads(manifest.read_text())["distributions"]}


# 1. the default env is the one uv would pick, and envship says which one it packed


def test_ship_packs_the_active_venv_not_envships_own(bare_venv: Path, tmp_path: Path) -> None:
    env = {"VIRTUAL_ENV": str(bare_venv),
           "PATH": f"{bare_venv}/bin{os.pathsep}{os.environ['PATH']}"}
    proc = envship("ship", str(tmp_path / "store"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"packed env {bare_venv} (Python 3." in proc.stderr
    assert "from $VIRTUAL_ENV" in proc.stderr
    names = _dist_names(tmp_path / "store")
    assert "pip" in names and "typer" not in names and "envship" not in names


def test_pack_finds_dot_venv_in_a_parent_directory(bare_template: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(bare_template, project / ".venv", symlinks=True)
    (project / "src" / "deep").mkdir(parents=True)
    proc = envship("pack", "-o", str(tmp_path / "out"), cwd=project / "src" / "deep")
    assert proc.returncode == 0, proc.stderr
    assert f"packed env {project / '.venv'}" in proc.stderr
    assert f"from .venv in {project}" in proc.stderr
    assert "typer" not in _dist_names(tmp_path / "out")


def test_explicit_python_wins_and_a_stale_virtual_env_is_an_error(
    bare_venv: Path, tmp_path: Path
) -> None:
    proc = envship("pack", "--python", str(bare_venv), "-o", str(tmp_path / "out"),
                   env={"VIRTUAL_ENV": str(tmp_path / "elsewhere")})
    assert proc.returncode == 0, proc.stderr
    assert "from --python" in proc.stderr
    proc = envship("pack", "-o", str(tmp_path / "out"),
                   env={"VIRTUAL_ENV": str(tmp_path / "gone")})
    assert "VIRTUAL_ENV" in one_line_error(proc)


def test_envship_store_is_the_default_store(bare_venv: Path, tmp_path: Path) -> None:
    team = tmp_path / "team-store"
    proc = envship("ship", "--python", str(bare_venv), env={"ENVSHIP_STORE": str(team)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(f"{team}/envs/")
    listed = envship("store", "ls", "--json", env={"ENVSHIP_STORE": str(team)})
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1


@pytest.fixture
def shipped(bare_venv: Path, tmp_path: Path) -> str:
    """The bare venv shipped to a local store; its env URI."""
    proc = envship("ship", str(tmp_path / "store"), "--python", str(bare_venv))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# 2. a typo in a size never empties the node cache


def test_cache_prune_refuses_negative_and_zero_sizes(shipped: str, tmp_path: Path) -> None:
    env = {"ENVSHIP_CACHE": str(tmp_path / "node-cache")}
    ran = envship("exec", shipped, "--", "python", "-c", "print('ok')", env=env)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr

    def cached() -> int:
        proc = envship("cache", "ls", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        return len(json.loads(proc.stdout))

    before = cached()
    assert before >= 2  # the env's layers (one per distribution) and one env view
    for bad in ("-1G", "0", "-5"):
        proc = envship("cache", "prune", "--max-size", bad, env=env)
        assert "--all" in one_line_error(proc)
        assert cached() == before
    proc = envship("cache", "prune", env={**env, "ENVSHIP_CACHE_MAX": "-1G"})
    assert "ENVSHIP_CACHE_MAX" in one_line_error(proc)
    proc = envship("cache", "prune", env={**env, "ENVSHIP_LOCK_WAIT": "soon"})
    assert "ENVSHIP_LOCK_WAIT" in one_line_error(proc)  # it used to mean 30 s, silently
    assert cached() == before
    proc = envship("cache", "prune", "--all", env=env)
    assert proc.returncode == 0, proc.stderr
    layers = "1 layer" if before == 2 else f"{before - 1} layers"
    assert f"removed {layers} and 1 env view," in proc.stdout
    assert cached() == 0


# 4. every URI envship prints is absolute and works with every command, from anywhere


def test_printed_uris_are_absolute_for_tilde_and_relative_stores(
    bare_venv: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"HOME": str(home), "ENVSHIP_CACHE": str(tmp_path / "node-cache")}
    tilde = envship("ship", "~/tildestore", "--python", str(bare_venv), "--tag", "dev", env=env)
    assert tilde.returncode == 0, tilde.stderr
    uri = tilde.stdout.strip()
    assert uri.startswith(f"{home}/tildestore/envs/"), uri
    assert f"tag: {home}/tildestore/tags/dev.json" in tilde.stderr
    rel = envship("ship", "./relstore", "--python", str(bare_venv), cwd=work, env=env)
    assert rel.returncode == 0, rel.stderr
    rel_uri = rel.stdout.strip()
    assert rel_uri.startswith(f"{work}/relstore/envs/"), rel_uri
    for target in (uri, rel_uri):
        ran = envship("exec", target, "--", "python", "-c", "print('in env')", cwd=elsewhere,
                      env=env)
        assert ran.returncode == 0 and ran.stdout.strip() == "in env", ran.stderr
        shown = envship("inspect", target, "--json", cwd=elsewhere, env=env)
        assert shown.returncode == 0, shown.stderr
    listed = envship("store", "ls", "relstore", "--json", cwd=work, env=env)
    assert json.loads(listed.stdout)[0]["uri"] == rel_uri
    tagged = envship("tag", rel_uri, "prod", cwd=elsewhere, env=env)
    assert tagged.stdout.strip() == f"{work}/relstore/tags/prod.json", tagged.stderr


# 6. `store ls` does not hide mistakes


def test_store_ls_missing_store_is_an_error_and_damaged_envs_are_listed(
    shipped: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert "does not exist" in one_line_error(envship("store", "ls", str(tmp_path / "stor")))
    assert "does not exist" in one_line_error(envship("gc", str(tmp_path / "stor")))
    assert "does not exist" in one_line_error(envship("tag", str(tmp_path / "stor"), "dev"))
    assert "does not exist" in one_line_error(envship("store", "verify", str(tmp_path / "stor")))
    assert "not an envship store" in one_line_error(envship("store", "ls", str(tmp_path)))
    # a first ship killed after its lease write leaves only that: still a store gc can clear
    (tmp_path / "leased" / "leases").mkdir(parents=True)
    (tmp_path / "leased" / "leases" / "x.json").write_text("{}")
    for cmd in (("store", "ls"), ("store", "verify")):
        done = envship(*cmd, str(tmp_path / "leased"))
        assert done.returncode == 0, done.stderr
    (tmp_path / "swept" / "sweeps").mkdir(parents=True)  # what a killed gc of it leaves
    done = envship("gc", str(tmp_path / "swept"))
    assert done.returncode == 0, done.stderr
    (tmp_path / "empty").mkdir()
    empty = envship("store", "ls", str(tmp_path / "empty"))
    assert empty.returncode == 0 and "no envs" in empty.stderr
    default = envship("store", "ls", "--json", env={"ENVSHIP_HOME": str(tmp_path / "fresh")})
    assert default.returncode == 0 and json.loads(default.stdout) == []  # nothing shipped yet

    damaged_id = "0" * 64
    (store / "envs" / f"{damaged_id}.json").write_text("{not json")
    listed = envship("store", "ls", str(store))
    assert listed.returncode == 0, listed.stderr
    assert damaged_id in listed.stdout and "damaged" in listed.stdout
    assert f"damaged: {store}/envs/{damaged_id}.json: manifest is not valid JSON" in listed.stderr
    rows = {e["env_id"]: e for e in json.loads(
        envship("store", "ls", str(store), "--json").stdout)}
    assert rows[damaged_id]["damaged"] and rows[shipped.rpartition("/")[2][:-5]]["damaged"] is None


def test_a_url_missing_its_slashes_is_an_error_not_a_local_store(tmp_path: Path) -> None:
    """`s3:/bucket` as a local path would make a store in ./s3:/bucket and exit 0."""
    for given, meant in (("s3:/bucket/envs", "s3://bucket/envs"), ("gs:b", "gs://b"),
                         ("file:/srv/store", "file:///srv/store")):
        for args in (("ship", given, "-p", sys.executable), ("store", "ls", given),
                     ("gc", given)):
            err = one_line_error(envship(*args, cwd=tmp_path))
            assert f"write {meant}" in err, err
        assert os.listdir(tmp_path) == []
    err = one_line_error(envship("store", "ls", env={"ENVSHIP_STORE": "s3:/"}, cwd=tmp_path))
    assert "write s3://" in err
    assert "s3://team-bucket/envs" in one_line_error(envship("store", "ls", "s3://"))
    uri = f"s3:/b/envs/{'a' * 64}.json"
    assert "write s3://b/envs/" in one_line_error(envship("inspect", uri, cwd=tmp_path))
    ran = envship("exec", uri, "--", "true", cwd=tmp_path)  # the node runtime's own parser
    assert ran.returncode == 1 and "write s3://b/envs/" in ran.stderr, ran.stderr
    # the way out the message gives: ./ makes it a path
    (tmp_path / "s3:" / "b").mkdir(parents=True)
    listed = envship("store", "ls", "./s3:/b", cwd=tmp_path)
    assert listed.returncode == 0 and "no envs" in listed.stderr, listed.stderr


def test_hdfs_without_java_or_hadoop_is_one_line(tmp_path: Path) -> None:
    """pyarrow lists every place it looked for libjvm (20+ lines); no HDFS server is needed to
    see it, so this runs for real."""
    pytest.importorskip("pyarrow")
    env = {"JAVA_HOME": str(tmp_path / "no-jdk"), "HADOOP_HOME": str(tmp_path / "no-hadoop"),
           "ARROW_LIBHDFS_DIR": str(tmp_path / "no-hadoop")}
    err = one_line_error(envship("store", "ls", "hdfs://namenode:8020/envship", env=env))
    assert "JAVA_HOME" in err and "HADOOP_HOME" in err


def test_library_warnings_are_one_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """gcsfs logs a warning with a traceback each time it gives up retrying: the user sees the
    warning's line (and envship's own error), -v shows the rest."""
    import logging

    from envship.cli.app import configure, state

    saved = (state.verbose, state.quiet)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        state.verbose = state.quiet = False
        configure()
        try:
            raise ConnectionError("Cannot connect to host storage.example:443")
        except ConnectionError:
            logging.getLogger("gcsfs").warning("_request out of retries on exception: x",
                                               exc_info=True)
        err = capsys.readouterr().err
        assert err == "warning: _request out of retries on exception: x\n"
        configure(verbose=True)
        try:
            raise ConnectionError("Cannot connect")
        except ConnectionError:
            logging.getLogger("gcsfs").warning("gave up", exc_info=True)
        err = capsys.readouterr().err
        assert "WARNING gcsfs: gave up" in err and "Traceback" in err
    finally:
        state.verbose, state.quiet = saved
        root.handlers[:] = handlers
        root.setLevel(level)


# 5. an unreachable store fails fast; a failing one says what it retries


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def test_refused_connection_fails_fast(bare_venv: Path) -> None:
    import time

    endpoint = f"endpoint_url=http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    proc = envship_process("ship", "s3://bkt/envs", "-s", endpoint, "--python", str(bare_venv),
                           env={**S3_ENV, "ENVSHIP_STORE_RETRY_TIMEOUT": "30"})
    elapsed = time.monotonic() - start
    assert "unreachable, connection refused" in one_line_error(proc)
    assert elapsed < 20, elapsed  # was 35 s of silent retries


def test_exec_from_a_refused_http_store_fails_fast(tmp_path: Path) -> None:
    import time

    uri = f"http://127.0.0.1:{_free_port()}/store/envs/{'0' * 64}.json"
    start = time.monotonic()
    proc = envship("exec", uri, "--", "python", "-c", "pass",
                   env={"ENVSHIP_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 1 and "cannot connect" in proc.stderr, proc.stderr
    assert "Connection refused" in proc.stderr and time.monotonic() - start < 10


def test_throttling_store_is_retried_and_said_so(tmp_path: Path) -> None:
    import http.server
    import threading

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
                    b"</Message></Error>")
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_PUT = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"endpoint_url=http://127.0.0.1:{server.server_address[1]}"
        proc = envship_process("store", "ls", "s3://bkt/envs", "-s", endpoint,
                               env={**S3_ENV, "ENVSHIP_STORE_RETRY_TIMEOUT": "6"})
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert any(ln.startswith("warning: store s3://bkt/envs:") and "retrying in" in ln
               for ln in lines), proc.stderr
    assert lines[-1].startswith("error:") and "gave up after retrying" in lines[-1]


def test_missing_s3_credentials_say_where_envship_looked(tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": None, "AWS_SESSION_TOKEN": None,
        "AWS_SHARED_CREDENTIALS_FILE": None, "AWS_CONFIG_FILE": None,
    }
    endpoint = f"endpoint_url=http://127.0.0.1:{_free_port()}"
    proc = envship_process("store", "ls", "s3://bkt/envs", "-s", endpoint, env=env)
    err = one_line_error(proc)
    assert "no S3 credentials found" in err and "$AWS_ACCESS_KEY_ID" in err
    assert "~/.aws/credentials" in err and endpoint.partition("=")[2] in err


# 7. node-script -o: a directory or a missing parent is handled, nothing half-written


def test_node_script_output_to_a_directory_or_a_missing_parent(tmp_path: Path) -> None:
    out = tmp_path / "bin"
    out.mkdir()
    proc = envship("node-script", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == ["envship_node.py"]  # no .tmp left beside it
    assert os.access(out / "envship_node.py", os.X_OK)
    ran = subprocess.run([sys.executable, str(out / "envship_node.py"), "-h"],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "usage:" in ran.stdout
    proc = envship("node-script", "-o", str(tmp_path / "missing" / "x" / "n.py"))
    assert "does not exist" in one_line_error(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


# 8. SIGTERM during ship cleans up; stale temp files of killed runs are swept


def test_sigterm_during_ship_leaves_no_temp_files(bare_venv: Path, tmp_path: Path) -> None:
    import signal
    import time

    site = next((bare_venv / "lib").glob("python3.*/site-packages"))
    with open(site / "junk.bin", "wb") as fh:  # incompressible: archiving takes a while
        for _ in range(150):
            fh.write(os.urandom(1 << 20))
    home = tmp_path / "home"
    blob_dir = home / "build-cache" / "blobs" / "sha256"
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    environ["ENVSHIP_HOME"] = str(home)
    proc = subprocess.Popen([ENVSHIP, "ship", str(tmp_path / "store"), "--python",
                             str(bare_venv)], env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(blob_dir.glob(".tmp-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "no temp file seen"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not list(home.rglob(".tmp-*"))
    assert not (tmp_path / "store" / "envs").exists() or not list(
        (tmp_path / "store" / "envs").iterdir())

    # a leftover of a killed (SIGKILL) run is swept by the next pack once it is stale
    stale, fresh = blob_dir / ".tmp-killed.tar.gz", blob_dir / ".tmp-running.tar.gz"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    (site / "junk.bin").unlink()
    done = envship("pack", "--python", str(bare_venv), "-o", str(tmp_path / "out"),
                   env={"ENVSHIP_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and fresh.exists()  # another run may still be writing that one


# 9. in logs and pipes: no wrapping, no stray blank line, whole ids


def test_errors_and_listings_are_whole_lines_off_a_terminal(shipped: str, tmp_path: Path) -> None:
    long = tmp_path / ("a-rather-long-directory-name-" * 4) / "venv-that-is-not-there"
    for args in (("pack", "--python", str(long)), ("ship", str(tmp_path / "s"), "-p", str(long))):
        proc = envship(*args, env={"COLUMNS": "40"})
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ")  # no blank line before it
        assert len(proc.stderr.splitlines()) == 1 and str(long) in proc.stderr
    listed = envship("store", "ls", str(tmp_path / "store"))
    env_id = shipped.rpartition("/")[2].removesuffix(".json")
    rows = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert rows == [env_id]


# 10. one consistent CLI

COMMANDS = (
    (), ("pack",), ("inspect",), ("diff",), ("ship",), ("tag",), ("gc",), ("presign",),
    ("exec",), ("node-script",), ("spark-submit",), ("dask-worker",), ("cache",),
    ("cache", "ls"), ("cache", "prune"), ("store",), ("store", "ls"),
)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "envship")
def test_every_command_has_h_and_readable_help(command: tuple[str, ...]) -> None:
    proc = envship(*command, "-h", env={"COLUMNS": "120"})
    assert proc.returncode == 0, (command, proc.stderr)
    usage = next(ln for ln in proc.stdout.splitlines() if "Usage:" in ln)
    assert f"Usage: envship {' '.join(command)}".rstrip() in usage, usage
    for unreadable in ("<bool>", "<str>", "<int>", "<path>", "<list[", "{", "built-in"):
        assert unreadable not in proc.stdout, (command, unreadable, proc.stdout)


def test_help_lists_all_commands_and_version_and_completion() -> None:
    proc = envship("--help")
    assert proc.returncode == 0 and envship("exec", "--help").returncode == 0
    assert "--version" in proc.stdout and "--quiet" in proc.stdout
    assert "--install-completion" in proc.stdout
    version = envship("--version")
    assert version.returncode == 0 and version.stdout.startswith("envship ")
    completion = envship_process(env={"_ENVSHIP_COMPLETE": "complete_bash",
                              "COMP_WORDS": "envship st", "COMP_CWORD": "1"})
    assert completion.returncode == 0 and "store" in completion.stdout.split()


def test_verbose_and_quiet_after_the_command(shipped: str, tmp_path: Path) -> None:
    bad = str(tmp_path / "nowhere" / "envs" / ("0" * 64 + ".json"))
    quiet_fail = envship_process("inspect", bad)
    assert "Traceback" not in quiet_fail.stderr
    for args in (("inspect", bad, "-v"), ("-v", "inspect", bad), ("inspect", "--verbose", bad)):
        proc = envship_process(*args)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, args
    store = str(tmp_path / "store")
    for args in (("ship", store, "-q"), ("-q", "ship", store)):
        proc = envship_process(*args, env={"VIRTUAL_ENV": str(tmp_path / "venv1")})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == shipped and proc.stderr == "", proc.stderr
    failing = envship_process("-q", "store", "ls", str(tmp_path / "nope"))
    assert failing.stderr.startswith("error:")  # errors are never quiet


def test_v_and_q_go_before_the_env_of_the_pass_through_commands(tmp_path: Path) -> None:
    """README: for exec, spark-submit and dask-worker, -v/-q go before the command name or
    before the env (after it they are the wrapped program's)."""
    from kits.nodekit import blob_from_members, file_member, make_manifest, write_store

    blob = blob_from_members("deps", [file_member("site-packages/m.py", b"X = 1\n")])
    uri = str(write_store(tmp_path / "store", make_manifest([blob]), [blob]))
    (tmp_path / "app.py").write_text("print(1)\n")
    shown = envship("spark-submit", "-v", "--dry-run", uri, "--master", "spark://h:1",
                    str(tmp_path / "app.py"))
    assert shown.returncode == 0 and "spark.envship.envId=" in shown.stdout, shown.stderr
    assert "local code matches env" in shown.stderr  # -v: envship's details
    passed = envship("spark-submit", "--dry-run", uri, "--master", "spark://h:1", "-v",
                     str(tmp_path / "app.py"))
    assert " -v " in passed.stdout  # after the env: spark-submit's --verbose
    worker = envship("dask-worker", "-q", "--dry-run", uri, "tcp://h:8786")
    assert worker.returncode == 0 and "tcp://h:8786" in worker.stdout, worker.stderr
    # exec: the fallback from an unwritable cache warns, -q before the env silences it
    for i, args in enumerate((("exec", uri), ("exec", "-q", uri), ("-q", "exec", uri))):
        (tmp_path / f"t{i}").mkdir()  # a fresh fallback area each time: each run builds
        env = {"TMPDIR": str(tmp_path / f"t{i}"), "ENVSHIP_CACHE": "/proc/envship-cache"}
        ran = envship(*args, "--", "python", "-c", "import m; print(m.X)", env=env)
        assert ran.returncode == 0 and ran.stdout == "1\n", ran.stderr
        assert ("warning:" in ran.stderr) == (i == 0), ran.stderr


def test_same_option_names_everywhere_old_ones_still_work(bare_venv: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    proc = envship("ship", store, "-p", str(bare_venv), "-x", "pip", "--json")
    assert proc.returncode == 0, proc.stderr
    env_uri = json.loads(proc.stdout)["env_uri"]
    assert "pip" not in _dist_names(tmp_path / "store")
    (tmp_path / "app.py").write_text("print(1)\n")
    for cache_opt in ("--cache", "--cache-dir"):  # --cache-dir: the old, hidden name
        cmd = envship("spark-submit", env_uri, "--mode", "node-cache", cache_opt, "/x/cache",
                      "--dry-run", "--master", "local[1]", str(tmp_path / "app.py"))
        assert cmd.returncode == 0, cmd.stderr
        assert "/x/cache" in cmd.stdout
    for flag in ("--dry-run", "--print"):
        cmd = envship("dask-worker", env_uri, "tcp://h:8786", flag)
        assert cmd.returncode == 0 and "tcp://h:8786" in cmd.stdout, cmd.stderr
    # `dask worker`'s options before the env were taken as the env (a secret given as
    # `-s secret=X` then went onto the worker's command line)
    for before in (["-s", "secret=X"], ["--nthreads", "2"]):
        cmd = envship("dask-worker", "--dry-run", *before, env_uri, "tcp://h:8786")
        assert before[0] in one_line_error(cmd) and "secret" not in cmd.stdout
    help_text = envship("spark-submit", "-h").stdout
    assert "--cache " in help_text and "--cache-dir" not in help_text


def test_diff_exits_like_diff1(bare_venv: Path, tmp_path: Path) -> None:
    a = envship("pack", "-p", str(bare_venv), "-o", str(tmp_path / "a"))
    b = envship("pack", "-p", str(bare_venv), "-x", "pip", "-o", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    same = envship("diff", str(tmp_path / "a"), str(tmp_path / "a"))
    assert same.returncode == 0 and "identical" in same.stdout
    differ = envship("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert differ.returncode == 1 and "- pip" in differ.stdout, differ.stderr
    assert envship("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json").returncode == 1
    # the same blobs, left out by another option: other env ids, so not "identical"
    c = envship("pack", "-p", str(bare_venv), "--only", "setuptools,wheel", "-o",
                str(tmp_path / "c"))
    assert c.returncode == 0, c.stderr
    other = envship("diff", str(tmp_path / "b"), str(tmp_path / "c"))
    assert other.returncode == 1 and "excluded: differ" in other.stdout, other.stdout
    trouble = envship("diff", str(tmp_path / "a"), str(tmp_path / "missing"))
    assert "error:" in one_line_error(trouble, code=2)


def test_json_timestamps_have_one_format(shipped: str, tmp_path: Path) -> None:
    import re

    env = {"ENVSHIP_CACHE": str(tmp_path / "node-cache")}
    assert envship("exec", shipped, "--", "python", "-c", "pass", env=env).returncode == 0
    cached = json.loads(envship("cache", "ls", "--json", env=env).stdout)
    listed = json.loads(envship("store", "ls", str(tmp_path / "store"), "--json").stdout)
    stamps = [e["last_use"] for e in cached] + [e["created"] for e in listed]
    assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps)


# 11. a cached env id runs even when its manifest in the store is gone (as documented)


def test_cached_env_runs_without_its_manifest(shipped: str, tmp_path: Path) -> None:
    env = {"ENVSHIP_CACHE": str(tmp_path / "node-cache")}
    assert envship("exec", shipped, "--", "python", "-c", "pass", env=env).returncode == 0
    Path(shipped).write_text("garbled")
    ran = envship("exec", shipped, "--", "python", "-c", "print('still runs')", env=env)
    assert ran.returncode == 0 and ran.stdout.strip() == "still runs", ran.stderr
    Path(shipped).unlink()
    ran = envship("exec", shipped, "--", "python", "-c", "print('still runs')", env=env)
    assert ran.returncode == 0 and ran.stdout.strip() == "still runs", ran.stderr
    fresh = envship("exec", shipped, "--", "python", "-c", "pass",
                    env={"ENVSHIP_CACHE": str(tmp_path / "other-cache")})
    assert fresh.returncode == 1 and "error" in fresh.stderr  # not cached: the manifest is needed
