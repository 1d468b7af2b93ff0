"""Conda prefix views: a conda env's layers composed into a real prefix at the view's path.

Files are hard-linked from the layers, except those holding a placeholder: they are copied and
rewritten for the view's path, as a conda installer does. noarch python packages are placed
under ``lib/pythonX.Y/site-packages`` and ``bin``, their entry points written. (Activating the
view for a command is ``activation.py``.)
"""

from __future__ import annotations

import os
import re

from .errors import NodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["assemble_conda", "relocate"]

_SHEBANG_MAX = 127  # Linux truncates longer #! lines


def _binary(data: bytes, placeholder: bytes, new: bytes, where: str) -> bytes:
    """conda's binary rule: each NUL-terminated string holding the placeholder gets *new* in
    its place and is padded with NULs to its old length."""
    if placeholder not in data:
        return data
    if len(new) > len(placeholder):
        raise NodeError(
            f"{where}: the env view path {new.decode(errors='replace')!r} ({len(new)} "
            f"characters) is longer than the {len(placeholder)}-character placeholder compiled "
            "into this file; use a shorter ENVSHIP_CACHE directory"
        )
    grow = len(placeholder) - len(new)

    def sub(m: re.Match[bytes]) -> bytes:
        text = m[0]
        return text.replace(placeholder, new) + b"\0" * (grow * text.count(placeholder))

    return re.sub(re.escape(placeholder) + rb"[^\0]*\0", sub, data)


def _shebang(data: bytes, prefix: bytes) -> bytes:
    """A ``#!`` line into *prefix* that Linux would cut (over 127 bytes) or split (a space in
    the prefix): a python gets a ``/bin/sh`` trampoline, anything else ``/usr/bin/env``."""
    if not data.startswith(b"#!" + prefix):
        return data
    first, _, rest = data.partition(b"\n")
    if len(first) <= _SHEBANG_MAX and b" " not in prefix:
        return data
    exe_tail, _, args = first[2 + len(prefix):].partition(b" ")
    name = exe_tail.rsplit(b"/", 1)[-1]
    opts = b" " + args if args else b""
    if b"python" in name:
        exe = prefix + exe_tail
        return b"#!/bin/sh\n'''exec' \"" + exe + b"\"" + opts + b" \"$0\" \"$@\"\n' '''\n" + rest
    return b"#!/usr/bin/env " + name + b"\n" + rest  # env takes no options on Linux


def relocate(data: bytes, placeholder: str, prefix: str, mode: str, where: str) -> bytes:
    """*data* (a file holding *placeholder*) rewritten for the install path *prefix*."""
    ph, new = placeholder.encode(), prefix.encode()
    if mode == "binary":
        return _binary(data, ph, new, where)
    return _shebang(data.replace(ph, new), new)


def _place(path: str, noarch: bool, site: str) -> str:
    """Where a file of a package goes in the prefix (noarch python packages are placed)."""
    if noarch:
        if path == "site-packages" or path.startswith("site-packages/"):
            return site + path[len("site-packages"):]
        if path == "python-scripts" or path.startswith("python-scripts/"):
            return "bin" + path[len("python-scripts"):]
    return path


def _entry_point(view: str, bindir: str, spec: str, label: str) -> None:
    from .assemble import _wrapper

    name, _, target = spec.partition("=")
    name, target = name.strip(), target.strip()
    if not name or "/" in name or name in (".", ".."):
        raise NodeError(f"layer {label}: bad entry point {spec!r}")
    path = os.path.join(bindir, name)
    if os.path.lexists(path):
        return  # the package ships a file of that name: it wins, as with conda
    with open(path, "w", encoding="utf-8") as f:
        f.write(_wrapper(view, target, name))
    os.chmod(path, 0o755)


def assemble_conda(
    tmp: str,
    final: str,
    env_id: str,
    manifest: dict[str, Any],
    raw_manifest: bytes,
    layer_dirs: list[tuple[str, str]],
    log: Callable[[str], None] | None = None,
) -> None:
    """Write the conda prefix view of *manifest* into the empty dir *tmp*; paths inside the
    files name *final*. *layer_dirs*: (kind, unpacked layer dir) in manifest order."""
    from .assemble import _console_scripts, _merge_layers, write_own_files
    from .merge import Merger

    mm = ".".join(manifest["python"]["version"].split(".")[:2])
    site = f"lib/python{mm}/site-packages"
    bindir = os.path.join(tmp, "bin")
    os.makedirs(os.path.join(tmp, site))
    os.makedirs(bindir, exist_ok=True)
    os.makedirs(os.path.join(tmp, "conda-meta"))
    with open(os.path.join(tmp, "conda-meta", "history"), "w", encoding="utf-8") as f:
        f.write(f"# envship view of env {os.path.basename(final)}\n")
    merger = Merger(keep_links=True)
    others: list[tuple[str, str]] = []
    scripts: list[tuple[str, str]] = []
    for lay, (kind, d) in zip(manifest["layers"], layer_dirs):  # noqa: B905 - Python 3.9
        pkg = lay.get("package")
        if pkg is None:
            others.append((kind, d))
            continue
        label = f"{pkg['name']}-{pkg['version']}-{pkg['build']}"
        noarch = pkg.get("noarch") == "python"
        for name in sorted(os.listdir(d)):
            if name.startswith(".envship"):
                continue
            src, dest = os.path.join(d, name), os.path.join(tmp, _place(name, noarch, site))
            if os.path.isdir(src) and not os.path.islink(src):
                merger.merge(src, dest, label)
            else:
                merger.add_file(src, dest, label)
        for r in lay.get("relocations", ()):
            src = os.path.join(d, r["path"])
            dest = os.path.join(tmp, _place(r["path"], noarch, site))
            if not os.path.isfile(src) or os.path.islink(src):
                raise NodeError(f"layer {label}: {r['path']} is in its relocation table but "
                                "not a file of the layer; re-create the env with `envship pack`")
            with open(src, "rb") as fb:
                data = relocate(fb.read(), r["placeholder"], final, r["mode"],
                                f"{r['path']} of conda package {label}")
            mode = os.stat(src).st_mode & 0o755
            os.unlink(dest)
            with open(dest, "wb") as fb:
                fb.write(data)
            os.chmod(dest, mode)
        scripts.extend((spec, label) for spec in lay.get("entry_points", ()))
    for spec, label in scripts:
        _entry_point(final, bindir, spec, label)
    taken = set(os.listdir(bindir))
    _console_scripts(manifest, bindir, final, taken)
    _merge_layers(tmp, os.path.join(tmp, site), bindir, others, taken, log)
    write_own_files(tmp, env_id, raw_manifest, layer_dirs)
    if merger.copied and log:
        log(f"env view: copied {merger.copied} files (hard links to the layers failed: another "
            f"filesystem?), linked {merger.linked}")
