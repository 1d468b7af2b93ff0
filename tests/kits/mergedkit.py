"""Schema-2 test envs: real wheels (written by hand, one pair built with gcc + patchelf)
installed by uv, split into one blob per distribution as the packer lays them out."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from kits.nodekit import (
    Blob,
    blob_from_tree,
    compile_tree,
    dist_layers,
    make_manifest2,
    write_code_tree,
    write_store,
)
from kits.support import HOST_PYTHON, run, uv_bin
from kits.wheelkit import build_rpath_pair, write_wheel

__all__ = ["Envs", "make_merged_envs"]

MM = "{}.{}".format(*sys.version_info[:2])


@dataclass(frozen=True)
class Envs:
    root: Path  # the store
    a: str  # env id: tinylib (code) + ns-a, ns-b, pthdist, rpathext, rpathlib
    b: str  # env id: A without ns-b, plus solo
    blobs: dict[str, Blob]  # distribution name -> its layer blob
    solo: Blob


def _wheels(out: Path, work: Path) -> list[Path]:
    wheels = [
        write_wheel(out, "ns-a", "1.0", {
            "nspkg/a/__init__.py": (
                b"import os\n"
                b"with open(os.path.join(os.path.dirname(__file__), 'data.txt')) as f:\n"
                b"    DATA = f.read().strip()\n"
                b"def main():\n    print('ns-a hello', DATA)\n    return 0\n"
            ),
            "nspkg/a/data.txt": b"a-data\n",
        }, console_scripts={"ns-a-hello": "nspkg.a:main"}),
        # ns-b reads a file of ns-a relative to its own __file__: only works in one site-packages
        write_wheel(out, "ns-b", "1.0", {
            "nspkg/b/__init__.py": (
                b"import os\n"
                b"with open(os.path.join(os.path.dirname(__file__), '..', 'a', 'data.txt')) as f:\n"
                b"    SIBLING = 'b-sees-' + f.read().strip()\n"
            ),
        }, scripts={
            "ns-b-tool": b"#!python\nimport nspkg.b\nprint('ns-b tool', nspkg.b.SIBLING)\n",
        }),
        write_wheel(out, "pthdist", "1.0", {
            "pthdist.pth": b"import pthdist_hook\npthdist_extra\n",
            "pthdist_hook.py": b"import os\nos.environ['PTHDIST_RAN'] = 'pth-ran'\n",
            "pthdist_extra/pthextra_mod.py": b"X = 1\n",
        }),
        write_wheel(out, "solo", "2.0", {"solo.py": b"WHO = 'solo'\n"}),
    ]
    return [*wheels, *build_rpath_pair(work, out)]


def make_merged_envs(base: Path) -> Envs:
    """Env A: tinylib (code) + ns-a, ns-b (compiled on the node), pthdist, rpathext, rpathlib;
    env B: A without ns-b, plus solo. Both in one store under *base*."""
    venv = base / "venv"
    run([uv_bin(), "venv", "-q", "-p", HOST_PYTHON, str(venv)])
    wheels = _wheels(base / "wheels", base / "build")
    run([uv_bin(), "pip", "install", "-q", "--no-index", "-p", str(venv / "bin" / "python"),
         *map(str, wheels)])
    site = venv / "lib" / f"python{MM}" / "site-packages"
    layers = dist_layers(site, venv / "bin", base / "split", node_compiled=["ns-b"])
    by_name = {b.dists[0].split("==")[0]: b for b in layers}
    code_trees = write_code_tree(base / "code")
    compile_tree(code_trees["site-packages"])
    # one module without its .pyc: running code writes it, and it must land in the view
    for pyc in (code_trees["site-packages"] / "tinylib_extra" / "__pycache__").glob("*.pyc"):
        pyc.unlink()
    code = replace(blob_from_tree("code", code_trees, keep_pyc=True), dists=("tinylib==0.1",))
    scripts = {"ns-a-hello": "nspkg.a:main", "tiny": "tinylib:main"}
    a_blobs = [code, *(b for n, b in by_name.items() if n != "solo")]
    b_blobs = [code, *(b for n, b in by_name.items() if n != "ns-b")]
    root = base / "store"
    ma = make_manifest2(a_blobs, console_scripts=scripts)
    mb = make_manifest2(b_blobs, console_scripts=scripts)
    write_store(root, ma, a_blobs)
    write_store(root, mb, b_blobs)
    return Envs(root, ma.env_id, mb.env_id, {**by_name, "tinylib": code}, by_name["solo"])
