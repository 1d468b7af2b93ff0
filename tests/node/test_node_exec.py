"""envship exec end to end on real layer stores: env vars, .pth, scripts, exit codes, signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from kits.nodekit import (
    ENVSHIP,
    Store,
    make_manifest,
    make_small_store,
    node_env,
    run_held_at_preparation,
    write_store,
)


def envship_exec(
    cache: Path, ref: object, *cmd: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), str(ref), "--", *cmd],
        capture_output=True, text=True, env=node_env(), timeout=300, **kw,  # type: ignore[call-overload]
    )


def test_exec_runs_inside_the_view(small_store: Store, cache: Path) -> None:
    code = (
        "import os, sys, tinylib, pthmod; "
        "print(pthmod.FLAG); print(os.environ['ENVSHIP_ENV_ID']); print(sys.prefix); "
        "print(os.environ['VIRTUAL_ENV']); print(os.environ['PATH'].split(os.pathsep)[0])"
    )
    proc = envship_exec(cache, small_store.uri, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    flag, env_id, prefix, venv, first_path = proc.stdout.splitlines()
    view = cache / "envs" / small_store.env_id
    assert flag == "pth ok"  # the layer's own .pth file was processed
    assert env_id == small_store.env_id
    assert Path(prefix) == view == Path(venv)
    assert Path(first_path) == view / "bin"
    assert proc.stderr == ""  # silent without -v
    assert (view / "envship-env-id").read_text().strip() == small_store.env_id
    assert (view / "pyvenv.cfg").read_text().startswith("home = ")


def test_console_script_and_data_bin(small_store: Store, cache: Path) -> None:
    proc = envship_exec(cache, small_store.uri, "sh", "-c", "tiny && tiny-data-script")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["tiny says hi", "data-script-ran"]


def test_exit_code_propagates(small_store: Store, cache: Path) -> None:
    proc = envship_exec(cache, small_store.uri, "python", "-c", "raise SystemExit(7)")
    assert proc.returncode == 7
    # warm path too
    proc = envship_exec(cache, small_store.uri, "python", "-c", "raise SystemExit(7)")
    assert proc.returncode == 7


def test_sigterm_kills_the_command_same_pid(small_store: Store, cache: Path) -> None:
    assert envship_exec(cache, small_store.uri, "true").returncode == 0  # warm the cache
    proc = subprocess.Popen(
        [ENVSHIP, "exec", "--cache", str(cache), str(small_store.uri), "--", "python", "-c",
         "import os, sys, time; print(os.getpid(), flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=node_env(),
    )
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert pid == proc.pid  # execv: the command *is* the process we started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM


def test_verbose_logs_one_line_per_fetched_layer(small_store: Store, cache: Path) -> None:
    args = [ENVSHIP, "exec", "-v", "--cache", str(cache), str(small_store.uri), "--", "true"]
    first = subprocess.run(args, capture_output=True, text=True, env=node_env())
    assert first.returncode == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and "fetched code layer" in lines[0] and " s" in lines[0]
    again = subprocess.run(args, capture_output=True, text=True, env=node_env())
    assert again.returncode == 0 and again.stderr == ""  # cache hit: silent


def test_command_not_found_and_usage(small_store: Store, cache: Path) -> None:
    proc = envship_exec(cache, small_store.uri, "no-such-command-xyz")
    assert proc.returncode == 127 and "no-such-command-xyz" in proc.stderr
    usage = subprocess.run([ENVSHIP, "exec", str(small_store.uri)], capture_output=True, text=True)
    assert usage.returncode == 2 and "no command" in usage.stderr


def test_env_from_the_environment_stays_off_the_command_line(
    small_store: Store, cache: Path
) -> None:
    """ENVSHIP_ENV names the env: the preparing process's command line (readable by every
    user of the node) does not, nor does the command's environment."""
    code = "import os, tinylib; print(os.environ['ENVSHIP_ENV_ID'], 'ENVSHIP_ENV' in os.environ)"
    run = run_held_at_preparation(
        [ENVSHIP, "exec", "--cache", str(cache), "--", "python", "-c", code],
        node_env(ENVSHIP_ENV=str(small_store.uri)), cache,
    )
    # a holder of ours (a pruner) is waited for, and named
    assert "waiting for node cache lock" in run.waiting and "cache.lock" in run.waiting
    assert small_store.env_id not in run.cmdline and " exec --cache " in run.cmdline
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [small_store.env_id, "False"]
    usage = subprocess.run([ENVSHIP, "exec", "--", "true"], capture_output=True, text=True,
                           env=node_env())
    assert usage.returncode == 2 and "ENVSHIP_ENV is not set" in usage.stderr
    # ... or a file that names it, which only its owner may read (it may hold a signature)
    ref_file = cache.parent / "env-ref"
    ref_file.write_text(f"{small_store.uri}\n")
    argv = [ENVSHIP, "exec", "--cache", str(cache), "--", "python", "-c", code]
    ref_file.chmod(0o644)
    proc = subprocess.run(argv, capture_output=True, text=True,
                          env=node_env(ENVSHIP_ENV_FILE=str(ref_file)))
    assert proc.returncode == 1 and "chmod 600" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    ref_file.chmod(0o600)
    proc = subprocess.run(argv, capture_output=True, text=True,
                          env=node_env(ENVSHIP_ENV_FILE=str(ref_file)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [small_store.env_id, "False"]


def test_python_m_envship_node_and_packed_dir(small_store: Store, cache: Path) -> None:
    # a packed directory (store layout with one manifest) is an env reference too
    proc = subprocess.run(
        [sys.executable, "-m", "envship.node", "--cache", str(cache), str(small_store.root),
         "--", "python", "-c", "import tinylib; print('ok')"],
        capture_output=True, text=True, env=node_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_prepare_api(small_store: Store, cache: Path) -> None:
    from envship.node import View, prepare

    view = prepare(small_store.uri, cache_dir=cache)
    assert isinstance(view, View)
    assert view.env_id == small_store.env_id
    assert Path(view.path) == cache / "envs" / small_store.env_id
    assert view.manifest["layers"][0]["digest"] == small_store.blobs[0].digest
    out = subprocess.run(
        [view.python, "-c", "import tinylib; print(tinylib.__file__)"],
        capture_output=True, text=True, env=node_env(),
    )
    assert out.returncode == 0 and str(cache / "layers") in out.stdout
    fd = view.hold()
    in_use = subprocess.run(
        [ENVSHIP, "cache", "ls", "--json", "--cache", str(cache)], capture_output=True, text=True
    )
    assert '"in_use": true' in in_use.stdout
    os.close(fd)
    started = time.monotonic()
    assert prepare(small_store.uri, cache_dir=cache) == view
    assert time.monotonic() - started < 1.0


def test_interpreter_missing_fails_before_download(
    tmp_path: Path, cache: Path, serve: object
) -> None:
    base = make_small_store(tmp_path / "a")
    manifest = make_manifest(base.blobs, version="3.7.17")
    root = tmp_path / "store37"
    write_store(root, manifest, base.blobs)
    server = serve(root)  # type: ignore[operator]
    uri = f"{server.url}/envs/{manifest.env_id}.json"
    proc = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), uri, "--", "python", "-c", "pass"],
        capture_output=True, text=True, env=node_env(PATH="/usr/bin:/bin"),
    )
    assert proc.returncode == 1
    assert "needs CPython 3.7" in proc.stderr and "--with-python" in proc.stderr
    assert not any(p.startswith("/blobs/") for p in server.counts)  # nothing downloaded
    assert not (cache / "layers").exists() or not os.listdir(cache / "layers")


def test_numpy_env_from_another_interpreter(numpy_store: Store, cache: Path) -> None:
    # run from the dev venv's envship, not the venv numpy was installed in
    proc = envship_exec(
        cache, numpy_store.uri, "python", "-c",
        "import numpy, tinylib, pthmod; print(numpy.arange(4).sum(), pthmod.FLAG)",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "6 pth ok"


def test_a_quoted_tilde_path_works(small_store: Store, tmp_path: Path) -> None:
    """`envship exec '~/store/envs/<id>.json'`: the shell left the ~, the node expands it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(small_store.root, home / "store")
    ref = f"~/store/envs/{small_store.env_id}.json"
    proc = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(tmp_path / "cache"), ref, "--", "tiny"],
        capture_output=True, text=True, env=node_env(HOME=str(home)), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tiny says hi"
