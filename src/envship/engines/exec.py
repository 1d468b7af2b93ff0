"""The `exec` engine, which every other adapter builds on: the command line and process
environment that start any process inside an env through the node runtime (YARN containers,
Kubernetes pods, Slurm, MPI, torch.distributed and TensorFlow workers start a command)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..env import Env, EnvRef
from ..errors import EngineError
from ..node.ref import REF_FILE_VAR, REF_VAR

__all__ = ["EnvRef", "Launch", "NODE_SCRIPT_NAME", "REF_FILE_VAR", "REF_VAR", "command",
           "launch", "process_environ", "write_ref_file"]

NODE_SCRIPT_NAME = "envship_node.py"  # what `envship node-script > envship_node.py` writes


@dataclass(frozen=True)
class Launch:
    """A process to start inside an env: *argv* names no env (``… -- CMD``), *env_vars*
    (``ENVSHIP_ENV``) do. Command lines are readable by every user of a node
    (``/proc/<pid>/cmdline``), a process's environment only by its owner and root."""

    argv: list[str]
    env_vars: dict[str, str]

    def environ(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        extra: Mapping[str, str] | None = None,
        base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment to start :attr:`argv` with (see :func:`process_environ`)."""
        return process_environ(cache_dir, {**(extra or {}), **self.env_vars}, base)

    def shown(self, *, show_signatures: bool = False) -> str:
        """A shell line for screens and logs: ``ENVSHIP_ENV=… argv…``, presigned URLs
        redacted unless *show_signatures*."""
        text = shlex.join([f"{k}={v}" for k, v in sorted(self.env_vars.items())] + self.argv)
        if show_signatures:
            return text
        from ..store.io.location import redact_signed_urls

        return redact_signed_urls(text)

    def with_ref_file(self, path: str | os.PathLike[str]) -> Launch:
        """The same launch naming the env through *path*, written here readable by its owner
        only (``ENVSHIP_ENV_FILE``), for engines that put the environment of a process on a
        command line too (Ray). *path* must be reachable where the process starts."""
        written = write_ref_file(self.env_vars[REF_VAR], path)
        return Launch(self.argv, {REF_FILE_VAR: written})

    def with_ref_in_argv(self) -> list[str]:
        """:attr:`argv` with the env reference before ``--`` (the form :func:`command` gives)."""
        cut = self.argv.index("--")
        return [*self.argv[:cut], self.env_vars[REF_VAR], *self.argv[cut:]]


def write_ref_file(ref: str, path: str | os.PathLike[str]) -> str:
    """Write *ref* to *path* (mode 0600, atomically); its absolute path."""
    target = os.path.abspath(os.fspath(path))
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an old temp file of ours may have had another mode
            os.write(fd, ref.encode() + b"\n")
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # it may hold a signed URL
        raise EngineError(f"cannot write the env reference file {target}: "
                          f"{exc.strerror or exc}") from None
    return target


def arg_list(value: Sequence[str], what: str) -> list[str]:
    """*value* as a list of arguments; EngineError for a string, whose letters would become
    the arguments."""
    if isinstance(value, str):
        raise EngineError(f"{what} {value!r} is a string: give a list of arguments, such as "
                          "shlex.split() makes of it")
    return list(value)


def launch(
    env: EnvRef,
    argv: Sequence[str],
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    envship_bin: str | None = None,
    verbose: bool = False,
) -> Launch:
    """How to run *argv* inside *env* on a node, the env reference kept off the command line.

    Start ``Launch.argv`` with ``Launch.environ()`` (or add ``Launch.env_vars`` to the
    environment you start it with). The options are :func:`command`'s.
    """
    argv = arg_list(argv, "the command")
    if not argv:
        raise EngineError("no command to run inside the env: give at least the program name")
    if node_script_path is not None and envship_bin is not None:
        raise EngineError("give node_script_path or envship_bin, not both")
    opts = ["--verbose"] if verbose else []
    if envship_bin is not None:
        runtime = [envship_bin, "exec"]
    elif node_script_path is not None:
        runtime = [python or "python3", node_script_path]
    else:
        runtime = [python or sys.executable, "-m", "envship.node"]
    return Launch([*runtime, *opts, "--", *argv], {REF_VAR: Env.uri_of(env)})


def command(
    env: EnvRef,
    argv: Sequence[str],
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    envship_bin: str | None = None,
    verbose: bool = False,
) -> list[str]:
    """The argv that runs *argv* inside *env* on a node.

    With *node_script_path* (a file written by `envship node-script`, present on the node) the
    single-file form ``python3 envship_node.py ENV -- argv…`` is used, for nodes where envship
    is not installed. With *envship_bin* (the `envship` console script on the node):
    ``envship exec ENV -- argv…``. Otherwise ``<python> -m envship.node ENV -- argv…``, the
    same runtime through an interpreter that has envship (this one by default).
    The node cache is chosen by ``$ENVSHIP_CACHE`` in the process environment.

    The env reference is on the command line, where every user of the node can read it (a
    presigned manifest URL is a credential while it is valid): prefer :func:`launch`.
    """
    return launch(env, argv, node_script_path=node_script_path, python=python,
                  envship_bin=envship_bin, verbose=verbose).with_ref_in_argv()


def process_environ(
    cache_dir: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a launcher process: *base* (os.environ) + node cache + *extra*."""
    environ = dict(os.environ if base is None else base)
    # A caller's venv must not leak into the env view: the node runtime sets its own.
    for key in ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"):
        environ.pop(key, None)
    if cache_dir is not None:
        environ["ENVSHIP_CACHE"] = os.fspath(cache_dir)
    environ.update(extra or {})
    return environ
