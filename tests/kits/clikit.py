"""The real `envship` command line run inside the test process: the same entry (`cli.run`,
its error handling and exit codes), without ~0.6 s of interpreter and import start-up a call.

Tests about the process itself (signals, the `exec` fast path that replaces the process, a
traceback never reaching the terminal of a real run) keep starting `envship` as a subprocess.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path

from .support import suite_tmp

__all__ = ["ENVSHIP", "envship", "envship_in_process", "envship_process"]

ENVSHIP = str(Path(sys.executable).parent / "envship")
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _user_environ(env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """A user's shell: no VIRTUAL_ENV unless *env* sets one (a None value removes a variable),
    the suite's own TMPDIR."""
    return {"VIRTUAL_ENV": None, "TMPDIR": suite_tmp(), **(env or {})}


def envship_process(
    *args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`envship ARGS` run by its console script in a new process, as a user would."""
    environ = dict(os.environ)
    for key, value in _user_environ(env).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run([ENVSHIP, *args], capture_output=True, text=True, cwd=cwd,
                          env=environ, timeout=timeout)


def envship(
    *args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`envship ARGS` in this process, except `envship exec`: its fast path replaces the
    process it runs in, so it gets one of its own."""
    from envship._entry import _wants_help

    n = 0  # `envship -q exec ...` execs too
    while n < len(args) and args[n] in ("-v", "--verbose", "-q", "--quiet"):
        n += 1
    if args[n:n + 1] == ("exec",) and not _wants_help(list(args[n + 1:])):
        return envship_process(*args, cwd=cwd, env=env, timeout=timeout)
    return envship_in_process(*args, cwd=cwd, env=env)


@contextlib.contextmanager
def _process_state(argv: list[str], cwd: Path | None) -> Iterator[None]:
    """What a CLI run changes in its process (argv, cwd, signal handlers, logging, the -v/-q
    state), put back afterwards: the next run starts as a fresh process would."""
    # the module, not the `app` object `envship.cli` re-exports under the same name
    cli_app = importlib.import_module("envship.cli.app")
    old_argv, old_cwd = sys.argv, os.getcwd()
    old_signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    root = logging.getLogger()
    old_handlers, old_level = root.handlers[:], root.level
    old_state = dict(vars(cli_app.state))
    old_quiet = cli_app.err_console.quiet
    old_tmp, tempfile.tempdir = tempfile.tempdir, None  # read from $TMPDIR, as a new process
    sys.argv = argv
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        for sig, handler in old_signals.items():
            signal.signal(sig, handler)
        for handler in root.handlers:
            if handler not in old_handlers:
                handler.close()
        root.handlers[:] = old_handlers
        root.setLevel(old_level)
        vars(cli_app.state).clear()
        vars(cli_app.state).update(old_state)
        cli_app.err_console.quiet = old_quiet
        tempfile.tempdir = old_tmp


def envship_in_process(
    *args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`envship ARGS` as :func:`envship.cli.run` runs it, output captured, in the environment
    of :func:`envship_process`."""
    from typer.testing import CliRunner

    from envship._entry import _wants_help
    from envship.cli import run

    if args[:1] == ("exec",) and not _wants_help(list(args[1:])):
        raise ValueError("`envship exec` replaces its process: run it with envship_process")
    code = 0
    crash = ""
    runner = CliRunner()
    with runner.isolation(env=_user_environ(env)) as (out, err, _):
        with _process_state(["envship", *args], cwd):
            try:
                run()
            except SystemExit as exc:
                if isinstance(exc.code, str):  # sys.exit("message"): printed, exit 1
                    code, crash = 1, exc.code + "\n"
                else:
                    code = exc.code or 0
            except Exception:  # as an uncaught error would end a real run
                code, crash = 1, traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode() + crash
    return subprocess.CompletedProcess(["envship", *args], code, stdout, stderr)
