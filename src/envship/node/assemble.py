"""Assemble an env view: a tiny venv whose one `.pth` puts the layers' site-packages on sys.path."""

from __future__ import annotations

import os

from .errors import NodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .interp import Interpreter

__all__ = ["assemble_view", "PTH_NAME"]

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
) -> None:
    """Write the view for *env_id* into the empty dir *tmp*; paths inside name *final*.

    *layer_dirs* lists (kind, unpacked layer dir) in manifest order.
    """
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

    # Code before deps, as in the manifest; addsitedir also runs the layers' own .pth files.
    dirs = [
        os.path.join(d, "site-packages")
        for kind, d in layer_dirs
        if kind != "python" and os.path.isdir(os.path.join(d, "site-packages"))
    ]
    line = "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs)
    with open(os.path.join(site, PTH_NAME), "w", encoding="utf-8") as f:
        f.write((line if dirs else "") + "\n")

    taken = {"python", "python3", f"python{mm}"}
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
    for kind, d in layer_dirs:
        data_bin = os.path.join(d, "data", "bin")
        if kind == "python" or not os.path.isdir(data_bin):
            continue
        for name in sorted(os.listdir(data_bin)):
            if name not in taken and _valid_script_name(name):
                os.symlink(os.path.join(data_bin, name), os.path.join(bindir, name))
                taken.add(name)

    with open(os.path.join(tmp, "envship-env-id"), "w", encoding="ascii") as f:
        f.write(env_id + "\n")
    with open(os.path.join(tmp, "manifest.json"), "wb") as fb:
        fb.write(raw_manifest)
    with open(os.path.join(tmp, "envship-layers"), "w", encoding="ascii") as f:
        f.write("".join(os.path.basename(d) + "\n" for _, d in layer_dirs))
