"""The boot archive Spark unpacks next to the layers: an executor `python` inside the env."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ...packing.archive import archive_files
from ...packing.manifest import Manifest, canonical_json

__all__ = [
    "BOOT_ALIAS",
    "ENV_REF_VAR",
    "BootArchive",
    "archives_boot",
    "node_cache_boot",
    "layer_alias",
    "archive_aliases",
    "BLOB_SUFFIX",
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
    from ...node.formats import SCHEMA_2, SCHEMA_3

    return getattr(manifest, "schema", None) in (SCHEMA_2, SCHEMA_3) or any(
        lay.kind in ("dist", "conda") for lay in manifest.layers
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
[ -x "$py" ] || py="$here/../{python_alias}/bin/python{version}"  # a conda python package
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

# Runs with -I -S under the chosen interpreter. Layer blobs of a local store arrive as plain
# files (spark.files: ../<hex>.blob, nothing unpacked by Spark); the first Python worker of an
# executor hands them to the node runtime shipped next to it (envship_node.py), which verifies
# each blob's sha256 while unpacking it (in parallel) into ../envship-cache and assembles the
# view there; ../envship-view links to it. Later workers find the link and exec at once.
# Layers Spark unpacked itself (the python layer; blobs of remote stores, which Spark would
# untar in spark.files anyway) are taken into the cache as they are.
_BOOT_PY = '''\
"""envship boot (Spark archives mode): unpack the env's blobs once per executor, exec python."""
import os
import sys

ENV_ID = {env_id}
VERSION = {version}
BLOBS = {blobs}
UNPACKED = {unpacked}
VIEW = {view}


def fail(msg):
    sys.stderr.write("envship: " + msg + "\\n")
    sys.exit(127)


def prepare(here, root, view):
    import time

    start = time.time()
    missing = [n for n in BLOBS.values() if not os.path.isfile(os.path.join(root, n))]
    if missing:
        fail("layer blob %s is missing next to %s: was the env's spark.files conf dropped?"
             % (missing[0], here))
    missing = [d for d in UNPACKED.values() if not os.path.isdir(os.path.join(root, d))]
    if missing:
        fail("layer directory %s is missing next to %s: was the env's spark.archives conf "
             "dropped?" % (missing[0], here))
    # A store the node runtime reads: the manifest came in this archive, the blobs are the
    # files Spark fetched (linked, not copied).
    store = os.path.join(here, "store")
    blobs = os.path.join(store, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for hex_, name in sorted(BLOBS.items()):
        try:
            os.symlink(os.path.join(root, name), os.path.join(blobs, hex_ + ".tar.gz"))
        except FileExistsError:
            pass
    cache = os.path.join(root, "envship-cache")
    layers = os.path.join(cache, "layers")
    os.makedirs(layers, exist_ok=True)
    for hex_, alias in sorted(UNPACKED.items()):  # unpacked by Spark: taken as they are
        try:
            os.symlink(os.path.join(root, alias), os.path.join(layers, hex_))
        except FileExistsError:
            pass
    sys.path.insert(0, here)
    import envship_node

    try:
        ready = envship_node.prepare(os.path.join(store, "envs", ENV_ID + ".json"),
                                     cache_dir=cache, python=sys.executable)
    except envship_node.NodeError as exc:
        fail(str(exc))
    tmp = "%s.tmp-%d" % (view, os.getpid())
    os.symlink(os.path.relpath(ready.path, root), tmp)
    os.replace(tmp, view)
    sys.stderr.write("envship: env %s: %d layer blobs verified and unpacked, %d taken as Spark "
                     "unpacked them, in %.2f s\\n"
                     % (ENV_ID[:12], len(BLOBS), len(UNPACKED), time.time() - start))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    view = os.path.join(root, VIEW)
    exe = os.path.join(view, "bin", "python" + VERSION)
    if not os.path.exists(exe):
        have = "%d.%d" % sys.version_info[:2]
        if have != VERSION:
            fail("env %s needs Python %s but %s is Python %s; install python%s on the nodes, "
                 "set ENVSHIP_PYTHON, or ship with --with-python" % (
                     ENV_ID[:12], VERSION, sys.executable, have, VERSION))
        prepare(here, root, view)
    env = dict(os.environ)
    env["PATH"] = os.path.join(view, "bin") + os.pathsep + env.get("PATH", os.defpath)
    env["VIRTUAL_ENV"] = view
    env["ENVSHIP_ENV_ID"] = ENV_ID
    env.pop("PYTHONHOME", None)
    if os.path.isdir(os.path.join(view, "conda-meta")):  # a conda prefix: activate it
        sys.path.insert(0, here)
        import envship_node  # noqa: F401 - serves the _envship_node package
        from _envship_node.conda import activate

        env = activate(view, env)
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


BLOB_SUFFIX = ".blob"  # not .tar.gz: Spark untars spark.files entries named *.tar.gz / *.tgz


def archives_boot(
    manifest: Manifest,
    files: Mapping[str, str] | None = None,
    unpacked: Mapping[str, str] | None = None,
) -> BootArchive:
    """Boot for archives mode: `python`, `boot.py`, the node runtime and the manifest.

    *files*: layer digest -> the file name its blob arrives as through ``spark.files``;
    *unpacked*: layer digest -> the directory Spark unpacks it into (``spark.archives``).
    By default every layer but `python` is a file ``<hex>.blob``; `python` is unpacked by
    Spark into ``envship-python`` (the wrapper runs boot with its interpreter).
    """
    from ...node.script import script_text

    version = manifest.python.major_minor
    if files is None and unpacked is None:
        files = {lay.digest: lay.hex + BLOB_SUFFIX for lay in manifest.layers
                 if lay.kind != "python"}
        unpacked = {lay.digest: layer_alias("python") for lay in manifest.layers
                    if lay.kind == "python"}
    blobs = {d.split(":", 1)[1]: name for d, name in (files or {}).items()}
    dirs = {d.split(":", 1)[1]: alias for d, alias in (unpacked or {}).items()}
    if set(blobs) | set(dirs) != {lay.hex for lay in manifest.layers} or set(blobs) & set(dirs):
        raise ValueError("every layer must arrive exactly once, as a file or unpacked")
    sh = _ARCHIVES_SH.format(
        env_id=manifest.env_id,
        env_id_short=manifest.env_id[:12],
        version=version,
        python_alias=layer_alias("python"),
    )
    boot = _BOOT_PY.format(
        env_id=json.dumps(manifest.env_id),
        version=json.dumps(version),
        blobs=json.dumps(blobs, sort_keys=True),
        unpacked=json.dumps(dirs, sort_keys=True),
        view=json.dumps(VIEW_DIR),
    )
    stored = manifest.hashed_dict()  # no layer URLs: the node runtime reads the blobs here
    boot_files = {
        "python": (sh.encode(), 0o755),
        "boot.py": (boot.encode(), 0o644),
        "envship_node.py": (script_text().encode(), 0o644),
        f"store/envs/{manifest.env_id}.json": (canonical_json(stored), 0o644),
    }
    return BootArchive(archive_files(boot_files), "archives")


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
