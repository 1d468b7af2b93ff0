"""The boot archive Spark unpacks next to the layers: an executor `python` inside the env."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...packing.archive import archive_files
from ...packing.manifest import Manifest

__all__ = [
    "BOOT_ALIAS",
    "ENV_REF_VAR",
    "BootArchive",
    "archives_boot",
    "node_cache_boot",
    "layer_alias",
    "archive_aliases",
    "is_merged",
    "write_boot",
]

BOOT_ALIAS = "envship-boot"  # Spark unpacks the boot archive into ./envship-boot/
ENV_REF_VAR = "ENVSHIP_ENV_REF"  # node-cache mode: the env reference, via spark.executorEnv
VIEW_DIR = "envship-view"  # archives mode: the env view the boot assembles next to the layers


def layer_alias(kind: str, digest: str | None = None) -> str:
    """The directory name Spark unpacks a layer into (``<blob url>#<alias>``).

    ``envship-<kind>`` for the one layer of each kind of a schema-1 env and for the `python`
    layer; ``envship-<kind>-<hex12>`` for the many `code` / `dist` layers of a schema-2 env.
    """
    if digest is None or kind == "python":
        return f"envship-{kind}"
    return f"envship-{kind}-{digest.split(':', 1)[-1][:12]}"


def is_merged(manifest: Manifest) -> bool:
    """Schema 2 (package-granular layers): the view merges them into one site-packages."""
    return getattr(manifest, "schema", None) == "envship.manifest/2" or any(
        lay.kind == "dist" for lay in manifest.layers
    )


def archive_aliases(manifest: Manifest) -> list[str]:
    """The alias of every layer of *manifest*, in manifest order."""
    merged = is_merged(manifest)
    return [layer_alias(lay.kind, lay.digest if merged else None) for lay in manifest.layers]


@dataclass(frozen=True)
class BootArchive:
    """A deterministic tar.gz: same inputs, same bytes (and so the same file name)."""

    data: bytes
    mode: str  # "archives" | "node-cache"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def file_name(self) -> str:
        return f"{BOOT_ALIAS}-{self.mode}-{self.digest[:16]}.tar.gz"


# POSIX sh: picks an interpreter, then hands over to boot.py. Runs on every Python worker start,
# so it stays tiny: no subshell beyond `cd`/`command -v`.
_ARCHIVES_SH = """\
#!/bin/sh
# envship (Spark archives mode): run Python inside env {env_id}
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 127
py="$here/../{python_alias}/python/bin/python{version}"
if [ ! -x "$py" ]; then
  py="${{ENVSHIP_PYTHON:-}}"
  if [ -z "$py" ]; then
    for cand in python{version} python3 python; do
      if command -v "$cand" >/dev/null 2>&1; then py=$(command -v "$cand"); break; fi
    done
  fi
fi
if [ -z "$py" ]; then
  echo "envship: env {env_id_short} needs python{version}, but there is none on PATH ($PATH)" \\
    "of $(hostname 2>/dev/null); install it on the nodes or ship with --with-python" >&2
  exit 127
fi
exec "$py" -I -S "$here/boot.py" "$@"
"""

# Runs with -I -S under the chosen interpreter: assembles ../envship-view (a tiny venv whose one
# .pth adds each unpacked layer with site.addsitedir, so the layers' own .pth files are
# processed) once per executor directory, then execs the view's python with the original args.
_BOOT_PY = '''\
"""envship boot (Spark archives mode): assemble the env view next to the layers, exec python."""
import os
import shutil
import sys

ENV_ID = {env_id}
VERSION = {version}
SITE_LAYERS = {site_layers}
VIEW = {view}
MERGED = {merged}


def fail(msg):
    sys.stderr.write("envship: " + msg + "\\n")
    sys.exit(127)


def merge(src, dest):
    if not os.path.isdir(src):
        return
    for dirpath, dirnames, filenames in os.walk(src):
        d = os.path.normpath(os.path.join(dest, os.path.relpath(dirpath, src)))
        if not os.path.isdir(d):
            os.makedirs(d)
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in filenames + links:
            s, t = os.path.join(dirpath, name), os.path.join(d, name)
            if os.path.lexists(t):
                if os.path.basename(d) == "bin":
                    continue  # bin/python and friends are the view's own
                fail("%s and another layer both hold %s" % (s, os.path.relpath(t, dest)))
            if os.path.islink(s):
                os.symlink(os.readlink(s), t)
                continue
            try:
                os.link(s, t)
            except OSError:
                shutil.copy2(s, t)


def build(view, root):
    real = os.path.realpath(sys.executable)
    tmp = "%s.tmp-%d" % (view, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    site = os.path.join(tmp, "lib", "python" + VERSION, "site-packages")
    os.makedirs(site)
    os.makedirs(os.path.join(tmp, "bin"))
    with open(os.path.join(tmp, "pyvenv.cfg"), "w") as f:
        f.write("home = %s\\ninclude-system-site-packages = false\\nversion = %s\\n"
                % (os.path.dirname(real), "%d.%d.%d" % sys.version_info[:3]))
    for name in ("python", "python3", "python" + VERSION):
        os.symlink(real, os.path.join(tmp, "bin", name))
    if MERGED:
        # One site-packages laid out as in the user's venv, hard-linked from the unpacked
        # layers (copied where links fail), so cross-distribution relative paths work.
        for d in SITE_LAYERS:
            merge(os.path.join(root, d, "site-packages"), site)
            data = os.path.join(root, d, "data")
            for name in sorted(os.listdir(data)) if os.path.isdir(data) else ():
                merge(os.path.join(data, name), os.path.join(tmp, name))
    else:
        dirs = [os.path.join(root, d, "site-packages") for d in SITE_LAYERS]
        with open(os.path.join(site, "_envship.pth"), "w") as f:
            f.write("import site; list(map(site.addsitedir, %r))\\n" % (dirs,))
    with open(os.path.join(tmp, "envship-env-id"), "w") as f:
        f.write(ENV_ID + "\\n")
    try:
        os.rename(tmp, view)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(view, "envship-env-id")):
            raise


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    have = "%d.%d" % sys.version_info[:2]
    if have != VERSION:
        fail("env %s needs Python %s but %s is Python %s; install python%s on the nodes, "
             "set ENVSHIP_PYTHON, or ship with --with-python" % (
                 ENV_ID[:12], VERSION, sys.executable, have, VERSION))
    for d in SITE_LAYERS:
        if not os.path.isdir(os.path.join(root, d)):
            fail("layer directory %s is missing next to %s: was the env's spark.archives "
                 "conf dropped?" % (d, here))
    view = os.path.join(root, VIEW)
    if not os.path.exists(os.path.join(view, "envship-env-id")):
        build(view, root)
    env = dict(os.environ)
    paths = [os.path.join(view, "bin")] + [
        os.path.join(root, d, "data", "bin") for d in SITE_LAYERS
        if not MERGED and os.path.isdir(os.path.join(root, d, "data", "bin"))]
    env["PATH"] = os.pathsep.join(paths + [env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = view
    env["ENVSHIP_ENV_ID"] = ENV_ID
    env.pop("PYTHONHOME", None)
    exe = os.path.join(view, "bin", "python" + VERSION)
    os.execve(exe, [exe] + sys.argv[1:], env)


main()
'''

_NODE_CACHE_SH = """\
#!/bin/sh
# envship (Spark node-cache mode): run Python inside the env named by ${ref_var}, fetched once
# per node into the node cache ($ENVSHIP_CACHE, default ~/.cache/envship).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 127
if [ -z "${{{ref_var}:-}}" ]; then
  echo "envship: {ref_var} is not set (spark.executorEnv.{ref_var} = the env URI)" >&2
  exit 127
fi
py="${{ENVSHIP_BOOT_PYTHON:-}}"
if [ -z "$py" ]; then
  for cand in python{version} python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then py=$(command -v "$cand"); break; fi
  done
fi
if [ -z "$py" ]; then
  echo "envship: no python3 on PATH ($PATH) of $(hostname 2>/dev/null) to run the node" \\
    "bootstrap; install Python >= 3.9 on the nodes" >&2
  exit 127
fi
exec "$py" "$here/envship_node.py" "${{{ref_var}}}" -- python "$@"
"""


def archives_boot(manifest: Manifest) -> BootArchive:
    """Boot for archives mode: `python` + `boot.py` that know the env id and its layer order."""
    version = manifest.python.major_minor
    aliases = archive_aliases(manifest)
    site_layers = [
        a for a, lay in zip(aliases, manifest.layers, strict=True) if lay.kind != "python"
    ]
    sh = _ARCHIVES_SH.format(
        env_id=manifest.env_id,
        env_id_short=manifest.env_id[:12],
        version=version,
        python_alias=layer_alias("python"),
    )
    boot = _BOOT_PY.format(
        env_id=json.dumps(manifest.env_id),
        version=json.dumps(version),
        site_layers=json.dumps(site_layers),
        view=json.dumps(VIEW_DIR),
        merged=repr(is_merged(manifest)),
    )
    files = {"python": (sh.encode(), 0o755), "boot.py": (boot.encode(), 0o644)}
    return BootArchive(archive_files(files), "archives")


def node_cache_boot(version: str) -> BootArchive:
    """Boot for node-cache mode: `python` that runs the single-file node runtime. The env is
    named at run time by ``$ENVSHIP_ENV_REF``, so one archive serves every env of a version."""
    from ...node.script import script_text

    sh = _NODE_CACHE_SH.format(ref_var=ENV_REF_VAR, version=version)
    files = {
        "python": (sh.encode(), 0o755),
        "envship_node.py": (script_text().encode(), 0o644),
    }
    return BootArchive(archive_files(files), "node-cache")


def write_boot(boot: BootArchive, directory: Path) -> Path:
    """Write *boot* as ``directory/<content-addressed name>`` (atomically; kept if present)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / boot.file_name
    if path.exists() and path.stat().st_size == len(boot.data):
        return path
    tmp = directory / f".{boot.file_name}.{os.getpid()}.tmp"
    tmp.write_bytes(boot.data)
    tmp.replace(path)
    return path
