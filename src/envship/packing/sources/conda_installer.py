"""Files conda installers keep in a prefix for themselves: caches, trash, locks, tags.

They are not part of the env, so they are left out of a pack (and said so at INFO level), as
conda-pack leaves them out. The rules are narrow on purpose: a user's file that only looks
like one of them (a ``CACHEDIR.TAG`` without the tag's signature, an ``envs/`` folder below
``share/``) stays a stray file, packed and reported.
"""

from __future__ import annotations

import os

__all__ = ["installer_file", "installer_dir"]

# Top-level entries conda-pack never packs (conda_pack/core.py, load_files): package caches,
# nested envs, conda-build's work, conda's locks and marks. conda-meta/ is read, not packed.
_TOP_LEVEL = frozenset({
    "conda-meta", "pkgs", "envs", "conda-bld", "conda-recipes", ".conda_lock", "users",
    ".index", ".unionfs", ".nonadmin",
    ".trash",  # rattler moves files it cannot delete yet here (install/unlink.rs)
})
# conda's temporary and trash files, wherever they are (conda clean --tempfiles removes them)
_TEMP_SUFFIXES = (".c~", ".trash")
# links old conda versions put into child envs, owned by no package (conda-pack drops them)
_OLD_CONDA_SCRIPTS = frozenset({"bin/conda", "bin/activate", "bin/deactivate"})
# rattler's Prefix::create writes it into every prefix (rattler_conda_types/src/prefix.rs)
_CACHEDIR_TAG = "CACHEDIR.TAG"
_CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def installer_dir(rel: str) -> bool:
    """Is the directory *rel* (relative to the prefix, ``/``-separated) an installer's?"""
    return rel in _TOP_LEVEL


def installer_file(rel: str, full: str) -> bool:
    """Is the file *rel* (relative to the prefix), nobody's by the records, an installer's?

    *full*: its path, read for a ``CACHEDIR.TAG``'s signature."""
    if "/" not in rel and (rel in _TOP_LEVEL or rel.endswith("~")):
        return True
    if rel.endswith(_TEMP_SUFFIXES) or (rel in _OLD_CONDA_SCRIPTS and os.path.islink(full)):
        return True
    if rel != _CACHEDIR_TAG or os.path.islink(full):
        return False
    try:
        with open(full, "rb") as fh:
            return fh.read(len(_CACHEDIR_SIGNATURE)) == _CACHEDIR_SIGNATURE
    except OSError:
        return False
