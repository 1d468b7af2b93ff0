"""Assemble an env view: a tiny venv holding the env's layers.

Schema 1: one `.pth` puts each layer's site-packages on sys.path. Schema 2: ONE site-packages
merged from every layer by hard links, laid out exactly like the user's venv.
"""

from __future__ import annotations

import os

from .errors import NodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .interp import Interpreter

__all__ = ["assemble_view", "write_own_files", "PTH_NAME"]

PTH_NAME = "_envship.pth"
_SHEBANG_MAX = 127  # Linux truncates longer #! lines


def _wrapper(view: str, spec: str, name: str) -> str:
    target = spec.split("[", 1)[0].strip()
    module, _, attr = target.partition(":")
    module, attr = module.strip(), attr.strip()
    if not all(p.isidentifier() for p in module.split(".")) or not all(
        p.isidentifier() for p in attr.split(".")
    ):
        raise NodeError(f"entry point {name} = {spec!r}: not 'module:function'")
    python = os.path.join(view, "bin", "python")
    if len(python) + 2 <= _SHEBANG_MAX and " " not in python:
        head = f"#!{python}\n"
    else:  # a /bin/sh trampoline works with any path length
        head = "#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python\" \"$0\" \"$@\"\n' '''\n"
    top, _, rest = attr.partition(".")
    call = f"{top}.{rest}" if rest else top
    return (
        f"{head}# envship console script: {name} = {target}\n"
        f"import sys\nfrom {module} import {top}\n"
        f"if __name__ == '__main__':\n    sys.exit({call}())\n"
    )


def _valid_script_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def assemble_view(
    tmp: str,
    final: str,
    env_id: str,
    manifest: dict[str, Any],
    raw_manifest: bytes,
    layer_dirs: list[tuple[str, str]],
    interpreter: Interpreter,
    log: Callable[[str], None] | None = None,
) -> None:
    """Write the view for *env_id* into the empty dir *tmp*; paths inside name *final*.

    *layer_dirs* lists (kind, unpacked layer dir) in manifest order.
    """
    from .formats import is_merged

    mm = ".".join(interpreter.version.split(".")[:2])
    bindir = os.path.join(tmp, "bin")
    site = os.path.join(tmp, "lib", f"python{mm}", "site-packages")
    os.makedirs(bindir)
    os.makedirs(site)
    with open(os.path.join(tmp, "pyvenv.cfg"), "w", encoding="utf-8") as f:
        f.write(
            f"home = {os.path.dirname(interpreter.path)}\n"
            "include-system-site-packages = false\n"
            f"version = {interpreter.version}\n"
            f"envship-env-id = {env_id}\n"
        )
    os.symlink(interpreter.path, os.path.join(bindir, "python"))
    for alias in ("python3", f"python{mm}"):
        os.symlink("python", os.path.join(bindir, alias))
    taken = {"python", "python3", f"python{mm}"}
    _console_scripts(manifest, bindir, final, taken)
    if is_merged(manifest):
        _merge_layers(tmp, site, bindir, layer_dirs, taken, log)
    else:
        _pth_layers(site, bindir, layer_dirs, taken)
    write_own_files(tmp, env_id, raw_manifest, layer_dirs)


def write_own_files(tmp: str, env_id: str, raw_manifest: bytes, layer_dirs: list[tuple[str, str]]
               ) -> None:
    """The view's own files: its env id, its manifest, the layers it links to."""
    with open(os.path.join(tmp, "envship-env-id"), "w", encoding="ascii") as f:
        f.write(env_id + "\n")
    if b'"url"' in raw_manifest:
        # a presigned manifest: keep the hashed form, without layer urls, so that no
        # presigned signature stays on the node
        import json

        from .formats import hashed_json

        raw_manifest = hashed_json(json.loads(raw_manifest))
    with open(os.path.join(tmp, "manifest.json"), "wb") as fb:
        fb.write(raw_manifest)
    with open(os.path.join(tmp, "envship-layers"), "w", encoding="ascii") as f:
        f.write("".join(os.path.basename(d) + "\n" for _, d in layer_dirs))


def _console_scripts(manifest: dict[str, Any], bindir: str, final: str, taken: set[str]) -> None:
    eps = manifest.get("entry_points", {})
    for group in ("console_scripts", "gui_scripts"):
        for name, spec in sorted(eps.get(group, {}).items()):
            if not _valid_script_name(name) or name in taken:
                continue
            path = os.path.join(bindir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(_wrapper(final, str(spec), name))
            os.chmod(path, 0o755)
            taken.add(name)


def _pth_layers(
    site: str, bindir: str, layer_dirs: list[tuple[str, str]], taken: set[str]
) -> None:
    """Schema 1: each layer's site-packages stays in its layer, added by one `.pth` file."""
    # Code before deps, as in the manifest; addsitedir also runs the layers' own .pth files.
    dirs = [
        os.path.join(d, "site-packages")
        for kind, d in layer_dirs
        if kind != "python" and os.path.isdir(os.path.join(d, "site-packages"))
    ]
    line = "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs)
    with open(os.path.join(site, PTH_NAME), "w", encoding="utf-8") as f:
        f.write((line if dirs else "") + "\n")
    for kind, d in layer_dirs:
        data_bin = os.path.join(d, "data", "bin")
        if kind == "python" or not os.path.isdir(data_bin):
            continue
        for name in sorted(os.listdir(data_bin)):
            if name not in taken and _valid_script_name(name):
                os.symlink(os.path.join(data_bin, name), os.path.join(bindir, name))
                taken.add(name)


def _merge_layers(
    view: str,
    site: str,
    bindir: str,
    layer_dirs: list[tuple[str, str]],
    taken: set[str],
    log: Callable[[str], None] | None,
) -> None:
    """Schema 2: hard-link every layer's files into the view's one site-packages and prefix."""
    from .merge import Merger

    merger = Merger()
    for kind, d in layer_dirs:
        if kind == "python":
            continue
        label = f"{kind} {os.path.basename(d)[:12]}"
        merger.places = [
            (os.path.join(d, "site-packages"), site),
            (os.path.join(d, "data", "bin"), bindir),
            (os.path.join(d, "data"), view),
        ]
        merger.merge(os.path.join(d, "site-packages"), site, label)
        data = os.path.join(d, "data")
        try:
            names = sorted(os.listdir(data))
        except FileNotFoundError:
            continue
        for name in names:
            if name == "bin":
                for script in sorted(os.listdir(os.path.join(data, "bin"))):
                    if script in taken or not _valid_script_name(script):
                        continue  # a console script of the manifest (or python) wins
                    src, dest = os.path.join(data, "bin", script), os.path.join(bindir, script)
                    if os.path.isdir(src) and not os.path.islink(src):
                        merger.merge(src, dest, label)
                    else:
                        merger.add_file(src, dest, label)
                    taken.add(script)
            elif name in _VIEW_OWN:
                raise NodeError(f"layer {label}: data/{name} would overwrite the view's own file")
            elif os.path.isdir(os.path.join(data, name)) and not os.path.islink(
                os.path.join(data, name)
            ):
                merger.merge(os.path.join(data, name), os.path.join(view, name), label)
            else:
                merger.add_file(os.path.join(data, name), os.path.join(view, name), label)
    if merger.copied and log:
        log(
            f"env view: copied {merger.copied} files (hard links to the layers failed: another "
            f"filesystem?), linked {merger.linked}"
        )


_VIEW_OWN = frozenset({"pyvenv.cfg", "envship-env-id", "envship-layers", "manifest.json"})
