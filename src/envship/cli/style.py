"""The same look for every command: -h/-v/-q after the command name too, arguments as NAME /
[NAME] / NAME..., no `<bool>` / `<list[str]>` type labels."""

from __future__ import annotations

import copy
from typing import Any

import typer

from .app import app, configure

__all__ = ["command", "command_name"]


def _click_style(cmd: Any, root_opts: list[Any]) -> None:
    """Make every command read the same: -h, -v and -q after the command name too,
    arguments as NAME / [NAME] / NAME..., no `<bool>` / `<list[str]>` type labels.

    Only click's public attributes are set (metavar, params, get_usage_pieces); the
    ``display_type_rich`` hook is the one newer typer versions ask for (unused by older ones)."""
    for sub in getattr(cmd, "commands", {}).values():
        _click_style(sub, root_opts)
    own = {name for p in cmd.params for name in getattr(p, "opts", ())}
    if not hasattr(cmd, "commands"):
        # the pass-through commands parse options only before their first argument (the
        # env): -v/-q there are envship's, after it the wrapped program's
        for opt in (o for o in root_opts if not own & set(o.opts)):
            twin = copy.copy(opt)
            twin.expose_value = False
            twin.is_eager = False
            twin.callback = (
                (lambda _c, _p, v: configure(verbose=v)) if twin.name == "verbose"
                else (lambda _c, _p, v: configure(quiet=v))
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
            param.type = copy.copy(param.type)  # (typer < 0.29 asks the type for its label)
            param.type.get_metavar = lambda *_a, **_k: ""
            if param.metavar is None:
                param.metavar = param.name.upper()
            piece = param.metavar + ("..." if param.nargs != 1 else "")
            # "-- CMD": optional to click (exec reads its env from $ENVSHIP_ENV when the
            # first argument is left out), never to the user
            piece = piece if param.required or piece.startswith("-- ") else f"[{piece}]"
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


def command_name(info: Any) -> str:
    """The name typer gives a registered command: its own, else the function's, dashed."""
    return str(info.name or typer.main.get_command_name(getattr(info.callback, "__name__", "")))


def command(only: str | None = None) -> Any:
    """The click command tree of `app`, polished by :func:`_click_style`; with *only*, a
    tree holding just that top-level command (what one run of `envship NAME ...` needs)."""
    source = app
    if only is not None:
        source = copy.copy(app)
        source.registered_commands = [c for c in app.registered_commands
                                      if command_name(c) == only]
        source.registered_groups = [g for g in app.registered_groups if g.name == only]
    cli = typer.main.get_command(source)
    root_opts = [p for p in cli.params if p.name in ("verbose", "quiet")]
    _click_style(cli, root_opts)
    return cli
