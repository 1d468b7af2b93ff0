"""envship boot (Spark archives mode): unpack the env's blobs once per executor, exec python.

Not imported by envship: this file goes into the boot archive as ``boot.py`` and runs on the
executors with ``-I -S`` under the interpreter the ``python`` wrapper chose, with only the
standard library and the single-file node runtime (``envship_node.py``) beside it. What it
boots is in ``boot.json`` next to it (written by :mod:`envship.engines.spark.archives`):

- ``env_id``, ``version`` (the env's ``X.Y``), ``view`` (the link to the view, next to the
  layers), ``manifest`` (the store key of the manifest in ``store/``), ``blob_dir`` (the
  store's blob directory) and ``blob_suffix``;
- ``blobs``: layer hex -> the file Spark fetched (``spark.files``: ``../<hex>.blob``, nothing
  unpacked by Spark); ``unpacked``: layer hex -> the directory Spark unpacked it into
  (``spark.archives``: the python layer, blobs of remote stores), taken into the cache as is.

The first Python worker of an executor hands the blobs to the node runtime, which verifies
each one's sha256 while unpacking it (in parallel) into ``../envship-cache`` and assembles the
view there; ``../envship-view`` links to it. Later workers find the link and exec at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, NoReturn

__all__ = ["main"]


def fail(msg: str) -> NoReturn:
    sys.stderr.write("envship: " + msg + "\n")
    sys.exit(127)


def _link(target: str, link: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.symlink(target, link)


def prepare(boot: dict[str, Any], here: str, root: str, view: str) -> None:
    """Hand the layers Spark delivered to the node runtime; link *view* to the env view."""
    import time

    start = time.time()
    blobs: dict[str, str] = boot["blobs"]
    unpacked: dict[str, str] = boot["unpacked"]
    missing = [n for n in blobs.values() if not os.path.isfile(os.path.join(root, n))]
    if missing:
        fail(f"layer blob {missing[0]} is missing next to {here}: was the env's spark.files "
             "conf dropped?")
    missing = [d for d in unpacked.values() if not os.path.isdir(os.path.join(root, d))]
    if missing:
        fail(f"layer directory {missing[0]} is missing next to {here}: was the env's "
             "spark.archives conf dropped?")
    # A store the node runtime reads: the manifest came in this archive, the blobs are the
    # files Spark fetched (linked, not copied).
    store = os.path.join(here, "store")
    blob_dir = os.path.join(store, *boot["blob_dir"])
    os.makedirs(blob_dir, exist_ok=True)
    for hex_, name in sorted(blobs.items()):
        _link(os.path.join(root, name), os.path.join(blob_dir, hex_ + boot["blob_suffix"]))
    cache = os.path.join(root, "envship-cache")
    # Unpacked by Spark: taken as they are (handed over by name, never linked into the cache).
    os.environ["ENVSHIP_LAYER_DIRS"] = os.pathsep.join(
        f"{hex_}={os.path.join(root, alias)}" for hex_, alias in sorted(unpacked.items()))
    sys.path.insert(0, here)
    import envship_node  # type: ignore[import-not-found]  # beside this file, not installed

    try:
        ready = envship_node.prepare(os.path.join(store, *boot["manifest"]),
                                     cache_dir=cache, python=sys.executable)
    except envship_node.NodeError as exc:
        fail(str(exc))
    tmp = f"{view}.tmp-{os.getpid()}"
    os.symlink(os.path.relpath(ready.path, root), tmp)
    os.replace(tmp, view)
    sys.stderr.write(f"envship: env {boot['env_id'][:12]}: {len(blobs)} layer blobs verified "
                     f"and unpacked, {len(unpacked)} taken as Spark unpacked them, in "
                     f"{time.time() - start:.2f} s\n")


def main() -> NoReturn:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    with open(os.path.join(here, "boot.json"), encoding="utf-8") as f:
        boot: dict[str, Any] = json.load(f)
    env_id: str = boot["env_id"]
    version: str = boot["version"]
    view = os.path.join(root, boot["view"])
    exe = os.path.join(view, "bin", "python" + version)
    if not os.path.exists(exe):
        have = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if have != version:
            fail(f"env {env_id[:12]} needs Python {version} but {sys.executable} is Python "
                 f"{have}; install python{version} on the nodes, set ENVSHIP_PYTHON, or ship "
                 "with --with-python")
        prepare(boot, here, root, view)
    # The node runtime's view_environ, spelled out: importing that runtime costs ~30 ms, and
    # this runs at every Python worker start. A conda view needs its activation: imported then.
    env = dict(os.environ)
    env["PATH"] = os.path.join(view, "bin") + os.pathsep + env.get("PATH", os.defpath)
    env["VIRTUAL_ENV"] = view
    env["ENVSHIP_ENV_ID"] = env_id
    env.pop("PYTHONHOME", None)
    if os.path.isdir(os.path.join(view, "conda-meta")):  # a conda prefix: activate it
        sys.path.insert(0, here)
        import envship_node  # noqa: F401  # serves the _envship_node package
        from _envship_node.activation import activate  # type: ignore[import-not-found]

        env = activate(view, env)
    os.execve(exe, [exe] + sys.argv[1:], env)


if __name__ == "__main__":
    main()
