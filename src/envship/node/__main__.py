"""`envship exec` / `python -m envship.node`: run a command inside an env, fetching it if needed."""

from __future__ import annotations

import os
import sys

from . import areas, cache
from .errors import NodeError
from .ref import REF_VAR, packed_env_id, parse_ref, ref_from_environ

__all__ = ["main", "USAGE"]

USAGE = """\
usage: {prog} [-v | -q] [--cache DIR] [--python PY] [ENV_REF] -- CMD [ARG...]

Run CMD inside the env ENV_REF: fetch and verify its layers into the node cache if they are
not there yet, assemble its view (a small venv), then exec CMD with the view's bin/ first on
PATH. CMD replaces this process: its exit code and signals pass through unchanged.

ENV_REF  env URI (<store>/envs/<env-id>.json: local path, file://, http(s)://, or any fsspec
         URL when fsspec is installed), tag URI (<store>/tags/<name>.json), a packed env
         directory, or a presigned manifest (<env-id>.presigned.json). Left out: the
         value of $ENVSHIP_ENV (or of the file $ENVSHIP_ENV_FILE names), which keeps it
         off the command line (other users of the node can read command lines; a
         presigned URL is a credential).

options:
  -v, --verbose    one line per fetched layer on stderr
  -q, --quiet      no warnings on stderr (errors still go there)
  --cache DIR      node cache (default: $ENVSHIP_CACHE, else ~/.cache/envship)
  --python PY      interpreter to use when the env has no python layer
                   (default: $ENVSHIP_PYTHON, else python3.X / python3 on PATH)
  -h, --help       show this help
"""


class _Usage(Exception):
    pass


class _Help(Exception):
    pass


def _parse(argv: list[str]) -> tuple[bool, bool, str | None, str | None, str, list[str]]:
    verbose, quiet, cache_dir, python = False, False, None, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            raise _Help
        if arg in ("-v", "--verbose"):
            verbose = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("--cache", "--python"):
            if i + 1 >= len(argv):
                raise _Usage(f"{arg} needs a value")
            i += 1
            if arg == "--cache":
                cache_dir = argv[i]
            else:
                python = argv[i]
        elif arg.startswith("--cache="):
            cache_dir = arg.split("=", 1)[1]
        elif arg.startswith("--python="):
            python = arg.split("=", 1)[1]
        elif arg == "--":
            ref = ref_from_environ()
            if not ref:
                raise _Usage(f"ENV_REF is missing before '--' (and ${REF_VAR} is not set)")
            if i + 1 >= len(argv):
                raise _Usage("no command given after --")
            return verbose, quiet, cache_dir, python, ref, argv[i + 1 :]
        elif arg.startswith("-") and arg != "-":
            raise _Usage(f"unknown option {arg}")
        else:
            break
        i += 1
    if i >= len(argv):
        raise _Usage("ENV_REF is missing")
    ref = argv[i]
    cmd = argv[i + 1 :]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise _Usage("no command given after ENV_REF --")
    return verbose, quiet, cache_dir, python, ref, cmd


def _quick_env_id(ref: str) -> str | None:
    """The env id *ref* names, if that needs no read (a tag does): the warm-start fast path."""
    try:
        parsed = parse_ref(ref)
        return packed_env_id(parsed.name) if parsed.kind == "packed" else parsed.env_id
    except (ValueError, NodeError):
        return None


def _find(cmd: str, path: str) -> str | None:
    if "/" in cmd:
        return cmd
    for d in path.split(os.pathsep):
        cand = os.path.join(d or ".", cmd)
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            return cand
    return None


def _log(message: str) -> None:
    sys.stderr.write(f"envship: {message}\n")
    sys.stderr.flush()


def run(ref: str, cmd: list[str], cache_dir: str | None, python: str | None, verbose: bool,
        quiet: bool = False) -> int:
    """Prepare *ref* and exec *cmd* in its view; returns only on failure. *quiet*: no
    warning lines (errors still)."""
    root = cache.cache_root(cache_dir)
    env_id = _quick_env_id(ref)
    warn = areas.Warnings()
    warn.printed = quiet and not verbose  # as if said already: nothing more is
    held = areas.hold_view(root, env_id, warn) if env_id is not None else None
    for _ in range(3):
        if held is not None:
            break
        from .runtime import ensure_view

        _, env_id = ensure_view(ref, root, python, _log if verbose else None, warn)
        held = areas.hold_view(root, env_id, warn)  # pruned in between? then build it again
    if held is None or env_id is None:
        from .fetch import safe_url  # no signature in an error message

        raise NodeError(f"env view for {safe_url(ref)} keeps disappearing; is the cache being "
                        "pruned?")
    view, lock = held
    if os.environ.get("ENVSHIP_VERIFY", "") not in ("", "0"):
        from .verify import verify_view

        verify_view(view)
    from .activation import view_environ

    env = view_environ(view, env_id, dict(os.environ))
    exe = _find(cmd[0], env["PATH"])
    if exe is None:
        sys.stderr.write(f"envship exec: {cmd[0]}: command not found in the env or on PATH\n")
        return 127
    # The shared lock survives exec: the view stays "in use" (safe from prune) while CMD runs.
    if lock is not None:
        os.set_inheritable(lock, True)
    try:
        os.execve(exe, cmd, env)
    except OSError as exc:
        sys.stderr.write(f"envship exec: cannot run {exe}: {exc.strerror}\n")
        return 126
    return 126  # not reached


def main(argv: list[str] | None = None, prog: str = "python -m envship.node") -> int:
    """Entry point of `envship exec`, `python -m envship.node` and the single-file form."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        verbose, quiet, cache_dir, python, ref, cmd = _parse(args)
    except NodeError as exc:  # $ENVSHIP_ENV_FILE unreadable or not private
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 1
    except _Help:
        sys.stdout.write(USAGE.format(prog=prog))
        return 0
    except _Usage as exc:
        sys.stderr.write(USAGE.format(prog=prog).split("\n\n", 1)[0] + "\n")
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    try:
        return run(ref, cmd, cache_dir, python, verbose, quiet)
    except NodeError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
