"""The `envship` command line: parses, calls the library, prints. No logic lives here."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from ..errors import EnvshipError

__all__ = [
    "AsJson", "STORE_DEFAULT_HELP", "app", "console", "default_signals", "err_console",
    "human_size", "packed_line", "run", "short_id", "show_progress", "state", "utc_iso",
    "utc_stamp",
]

app = typer.Typer(
    name="envship",
    help="Ship a Python environment and its code to a cluster as content-addressed layers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
# Messages are never hard-wrapped: a path or env id split over two lines cannot be pasted.
err_console = Console(stderr=True, soft_wrap=True)
_error_console = Console(stderr=True, soft_wrap=True)  # errors: shown even with --quiet
# Where no URL is given: the store of `paths.default_store_url`.
STORE_DEFAULT_HELP = "default: $ENVSHIP_STORE, else $ENVSHIP_HOME/store"
# Commands whose options after their arguments belong to the program they wrap
# (`spark-submit -v` is spark-submit's --verbose): -v/-q go before the command name there.
_PASS_THROUGH = frozenset({"exec", "spark-submit", "dask-worker"})


class _State:
    verbose: bool = False
    quiet: bool = False
    error_exit_code: int = 1  # `diff` makes it 2, as diff(1) does: 1 means "they differ"


state = _State()


def human_size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short_id(text: str, length: int = 16) -> str:
    """An id shortened for people at a terminal; whole in pipes and logs (scripts use it)."""
    return text[:length] if console.is_terminal else text


def show_progress() -> bool:
    """Progress bars only on a terminal: in logs they are noise (and a stray blank line)."""
    return err_console.is_terminal and not err_console.quiet


def utc_stamp(seconds: float | None) -> str:
    """A time for people, in every table: ``2026-05-04 12:30`` (UTC)."""
    if seconds is None:
        return "-"
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def utc_iso(seconds: float | None) -> str | None:
    """A time in JSON, in every command: ``2026-05-04T12:30:00Z`` (as in provenance files)."""
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def packed_line(prefix: str | None, implementation: str, version: str, reason: str) -> str:
    """The stderr line naming the env that was packed: path, Python, why that one."""
    python = "Python" if implementation.lower() == "cpython" else implementation
    return f"packed env {prefix} ({python} {version}, from {reason})"


def _configure(verbose: bool | None = None, quiet: bool | None = None) -> None:
    """Apply -v/-q (given before or after the command name) to output and logging."""
    if verbose is not None:
        state.verbose = state.verbose or verbose
    if quiet is not None:
        state.quiet = state.quiet or quiet
    err_console.quiet = state.quiet and not state.verbose
    if not console.is_terminal:  # a pipe or a log: whole lines, whatever their length
        console.soft_wrap = True
        console.width = 10_000
    # Library warnings (a store being retried, a file left out) are for the user: one plain
    # "warning: …" line; -v adds levels and logger names for the curious.
    level = logging.INFO if state.verbose else logging.ERROR if state.quiet else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(levelname)s %(name)s: %(message)s" if state.verbose else "warning: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        print(f"envship {version('envship')}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show progress details and, on errors, the traceback."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only results and errors (no progress or notes)."
    ),
    version: bool = typer.Option(
        False, "--version", help="Print envship's version and exit.", is_eager=True,
        callback=_version,
    ),
) -> None:
    _configure(verbose, quiet)


def _click_style(cmd: Any, root_opts: list[Any]) -> None:
    """Make every command read the same: -h, -v and -q after the command name too,
    arguments as NAME / [NAME] / NAME..., no `<bool>` / `<list[str]>` type labels.

    Only click's public attributes are set (metavar, params, get_usage_pieces); the
    ``display_type_rich`` hook is the one newer typer versions ask for (unused by older ones)."""
    import copy

    for sub in getattr(cmd, "commands", {}).values():
        _click_style(sub, root_opts)
    if cmd.name not in _PASS_THROUGH and not hasattr(cmd, "commands"):
        for opt in root_opts:
            twin = copy.copy(opt)
            twin.expose_value = False
            twin.is_eager = False
            twin.callback = (
                (lambda _c, _p, v: _configure(verbose=v)) if twin.name == "verbose"
                else (lambda _c, _p, v: _configure(quiet=v))
            )
            cmd.params.append(twin)
    make_help = cmd.get_help_option

    def help_option(ctx: Any) -> Any:
        opt = make_help(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    cmd.get_help_option = help_option
    for param in cmd.params:
        if param.param_type_name == "argument":
            param.display_type_rich = lambda *_a, **_k: None  # no "<str>": the help says it
            if param.metavar is None:
                param.metavar = param.name.upper()
            piece = param.metavar + ("..." if param.nargs != 1 else "")
            piece = piece if param.required else f"[{piece}]"
            param.get_usage_pieces = lambda *_a, piece=piece, **_k: [piece]
        elif param.metavar is None:
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""  # a flag takes no value: nothing to show
            else:  # newer typer names types ("int", "Path", "list[str]"); click, "integer"…
                bare_type = getattr(param, "bare_type", None)
                bare = str(bare_type() if bare_type else getattr(param.type, "name", ""))
                param.metavar = (
                    "N" if bare in ("int", "integer") else "PATH" if "path" in bare.lower()
                    else "TEXT"
                )


def _command() -> Any:
    """The click command tree of `app`, polished by :func:`_click_style`."""
    cli = typer.main.get_command(app)
    root_opts = [p for p in cli.params if p.name in ("verbose", "quiet")]
    _click_style(cli, root_opts)
    return cli


def _register() -> None:
    # Each area registers its own commands; importing the module is enough.
    from . import engine_cmds, node_cmds, pack_cmds, spark_cmds, store_cmds  # noqa: F401


class _Terminated(BaseException):
    """SIGTERM (or SIGHUP) as an exception, so the library's cleanup runs as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def default_signals() -> None:
    """SIGTERM/SIGHUP as before envship started: for commands that only wait for a child
    (spark-submit), whose own handling of the signal is what counts."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def run() -> None:
    """Run the CLI; an EnvshipError becomes a short red message and exit code 1."""
    import signal

    _register()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        code = _command().main(prog_name="envship", standalone_mode=False)
    except _Terminated as exc:
        default_signals()
        _error_console.print(f"[red]terminated ({signal.Signals(exc.signum).name})[/]")
        sys.exit(128 + exc.signum)
    except EnvshipError as exc:
        if state.verbose:
            _error_console.print_exception()
        from rich.markup import escape  # messages hold brackets: "pip install envship[s3]"

        _error_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(state.error_exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _error_console.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as exc:
        # Usage errors: typer may bundle its own copy of click, so match the class by name.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    # In non-standalone mode click returns the code of a `typer.Exit(code)` instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)
