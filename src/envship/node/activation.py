"""The environment of a command run in a view; for a conda view, its activation
(``CONDA_PREFIX`` and ``activate.d``).

On every start's path (``envship exec``, the Spark boot), so it imports nothing heavy: the
scripts are run with ``os.posix_spawn`` (``subprocess`` costs more to import than the shell
costs to run), and no shell is started when the env has no ``activate.d`` script.
"""

from __future__ import annotations

import os

from .errors import NodeError
from .ref import REF_FILE_VAR, REF_VAR

__all__ = ["activate", "activation_scripts", "is_conda_view", "view_environ"]

_MARK = b"\0envship-activated\0"
# sources every script in order, stops at the first failing one, prints the environment
_SOURCE_ALL = 'for f do . "$f" || exit $?; done; printf "\\0envship-activated\\0"; exec env -0'
_SHELL_OWN = ("_", "SHLVL", "PWD", "OLDPWD")  # variables the shell sets for itself


def view_environ(view: str, env_id: str, base: dict[str, str]) -> dict[str, str]:
    """*base* made the environment of a command inside the view at *view*: its ``bin/`` first
    on PATH, ``VIRTUAL_ENV``, ``ENVSHIP_ENV_ID``, no ``PYTHONHOME``, no env reference (it may
    be signed: the command has the env id), and a conda view's activation."""
    env = dict(base)
    env["PATH"] = os.path.join(view, "bin") + os.pathsep + env.get("PATH", os.defpath)
    env["VIRTUAL_ENV"] = view
    env["ENVSHIP_ENV_ID"] = env_id
    env.pop("PYTHONHOME", None)
    env.pop(REF_VAR, None)
    env.pop(REF_FILE_VAR, None)
    return activate(view, env) if is_conda_view(view) else env


def is_conda_view(view: str) -> bool:
    """Is the view at *view* a conda prefix (it has ``conda-meta/``)?"""
    return os.path.isdir(os.path.join(view, "conda-meta"))


def activation_scripts(view: str) -> list[str]:
    """The view's ``etc/conda/activate.d/*.sh``, in name order (as conda sources them)."""
    folder = os.path.join(view, "etc", "conda", "activate.d")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names if n.endswith(".sh"))


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _source(scripts: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run the scripts in one ``/bin/sh``: (exit code, its stdout, its stderr)."""
    out_r, out_w = os.pipe()
    # stderr to an anonymous file: no second pipe to drain while stdout is read
    err = os.memfd_create("envship-activate") if hasattr(os, "memfd_create") else None
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, out_w, 1)]
    if err is not None:
        actions.append((os.POSIX_SPAWN_DUP2, err, 2))
    try:
        pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", _SOURCE_ALL, "sh", *scripts], env,
                             file_actions=actions)
        os.close(out_w)
        out_w = -1
        out = _read_all(out_r)
        _, status = os.waitpid(pid, 0)
        message = b""
        if err is not None:
            os.lseek(err, 0, os.SEEK_SET)
            message = _read_all(err)
        return os.waitstatus_to_exitcode(status), out, message
    finally:
        for fd in (out_r, out_w, err):
            if fd is not None and fd >= 0:
                os.close(fd)


def activate(view: str, env: dict[str, str]) -> dict[str, str]:
    """*env* for a command run in the conda view *view*: ``CONDA_PREFIX`` set and the view's
    ``etc/conda/activate.d/*.sh`` scripts sourced (in name order), as ``conda run`` does."""
    env = dict(env)
    env.pop("VIRTUAL_ENV", None)
    env["CONDA_PREFIX"] = view
    env["CONDA_DEFAULT_ENV"] = view
    env["CONDA_SHLVL"] = "1"
    scripts = activation_scripts(view)
    if not scripts:
        return env
    try:
        code, out, errors = _source(scripts, env)
    except OSError as exc:
        raise NodeError(f"cannot run the env's activation scripts with /bin/sh: {exc}") from exc
    _, mark, out = out.partition(_MARK)
    if code != 0 or not mark:
        why = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise NodeError(f"the env's activation scripts ({os.path.dirname(scripts[0])}) failed "
                        f"(exit {code}): {why[0]}")
    new: dict[str, str] = {}
    for item in out.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key:
            new[os.fsdecode(key)] = os.fsdecode(value)
    for name in _SHELL_OWN:  # the shell's own: as they were
        if name in env:
            new[name] = env[name]
        else:
            new.pop(name, None)
    return new
