"""Which distributions of a snapshot go into the env (--only / --exclude / --include)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import PackError
from .manifest import Excluded
from .sources.snapshot import DistInfo, Snapshot, canonical_name

__all__ = ["DEFAULT_EXCLUDED", "PACKER_ONLY", "Selection", "select"]

log = logging.getLogger(__name__)

# Left out unless --include names them: a Spark runtime brings its own, and a second copy
# on sys.path shadows the cluster's and breaks the JVM <-> Python gateway on version skew.
DEFAULT_EXCLUDED = {
    "pyspark": "provided by the Spark runtime (keep it with --include pyspark)",
    "py4j": "provided by the Spark runtime (keep it with --include py4j)",
}

# Left out, unless --include names them, from an env that holds envship itself: envship's
# own tools for the machine that packs, which no node runs. uv (a 40 MB binary, 19 MB of
# blob) builds envs from locks; envship depends on it, so every venv with envship has it.
PACKER_ONLY = {
    "uv": "envship's lock-build tool, not run on nodes (keep it with --include uv)",
}


@dataclass(frozen=True)
class Selection:
    kept: tuple[DistInfo, ...]
    excluded: tuple[Excluded, ...]


def _names(values: Iterable[str] | str | None) -> list[str]:
    out: list[str] = []
    if isinstance(values, str):  # exclude="six": one value, not the letters s, i, x
        values = [values]
    for v in values or ():
        out += [canonical_name(p) for p in v.replace(",", " ").split() if p]
    return out


def select(
    snapshot: Snapshot,
    *,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    whole: frozenset[str] = frozenset(),
) -> Selection:
    """Apply the selection options; every distribution left out is returned with its reason.
    *whole*: ``name==version`` of distributions that cannot be left out (those of conda
    packages: a conda env is packed with every package); naming one is an error."""
    installed = {d.name for d in snapshot.distributions}
    excl, only_l, incl = _names(exclude), _names(only), _names(include)
    missing = sorted({n for n in only_l + incl if n not in installed})
    if missing:
        raise PackError(
            f"not installed in {snapshot.prefix}: {', '.join(missing)}; "
            "check the names given to --only / --include."
        )
    for name in excl:
        if name not in installed:
            log.warning("--exclude %s: no such distribution in %s", name, snapshot.prefix)
    kept: list[DistInfo] = []
    left: list[Excluded] = []
    for dist in snapshot.distributions:
        reason = None
        if only_l and dist.name not in only_l:
            reason = "not selected by --only"
        elif dist.name in excl:
            reason = "excluded by --exclude"
        elif dist.name not in incl and dist.name not in only_l:
            reason = DEFAULT_EXCLUDED.get(dist.name) or (
                PACKER_ONLY.get(dist.name) if "envship" in installed else None)
        if reason is not None and f"{dist.name}=={dist.version}" in whole:
            if reason.startswith(("excluded by", "not selected by")):
                raise PackError(
                    f"{dist.name} {dist.version} ({reason}) was installed by a conda package, "
                    "and a conda env is packed with every package; remove it with conda first "
                    "to leave it out"
                )
            reason = None  # a default exclusion: the conda package brings it anyway
        if reason is None:
            kept.append(dist)
        else:
            left.append(Excluded(dist.name, dist.version, reason))
    return Selection(tuple(kept), tuple(left))
