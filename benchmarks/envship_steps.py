"""How the benchmarks drive envship: the CLI, as a user would, with isolated homes and caches."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import BenchError, run

__all__ = [
    "PackOut",
    "envship_bin",
    "envship_exec",
    "envship_pack",
    "envship_ship",
    "node_script",
    "read_pack_dir",
]


def envship_bin() -> str:
    """The `envship` console script next to the running interpreter (the dev venv)."""
    path = Path(sys.executable).parent / "envship"
    if not path.exists():
        raise BenchError(f"envship is not installed in {sys.prefix}: `uv pip install -e .`")
    return str(path)


@dataclass(frozen=True)
class PackOut:
    """What one pack produced: the env id, its manifest and the layer blobs by kind."""

    seconds: float
    env_id: str
    manifest: dict[str, object]
    blobs: dict[str, Path]  # layer kind -> blob file
    sizes: dict[str, int]  # layer kind -> blob bytes (all layers of that kind: dist, code...)
    digests: dict[str, str]  # layer label ("dist numpy==2.3.4", "code mylib==0.1") -> digest
    built: dict[str, bool] = field(default_factory=dict)  # layer digest/kind -> archived now


def read_pack_dir(out: Path, seconds: float = 0.0, env_id: str | None = None) -> PackOut:
    """Read a store-layout directory written by `envship pack -o` / `envship ship`."""
    manifests = [p for p in sorted((out / "envs").glob("*.json"))
                 if not p.name.endswith(".provenance.json")]
    if env_id is None:
        if len(manifests) != 1:
            raise BenchError(f"expected one manifest in {out}/envs, found {len(manifests)}")
        env_id = manifests[0].name[: -len(".json")]
    manifest = json.loads((out / "envs" / f"{env_id}.json").read_text())
    blobs, sizes, digests = {}, {}, {}
    for layer in manifest["layers"]:
        hexd = layer["digest"].split(":", 1)[1]
        label = " ".join([layer["kind"], *layer.get("dists", [])])
        blobs[label] = out / "blobs" / "sha256" / f"{hexd}.tar.gz"
        sizes[layer["kind"]] = sizes.get(layer["kind"], 0) + int(layer["size"])
        digests[label] = layer["digest"]
    return PackOut(seconds, env_id, manifest, blobs, sizes, digests)


def _env(home: Path) -> dict[str, str]:
    return {"ENVSHIP_HOME": str(home)}


def envship_pack(python: Path, out: Path, home: Path) -> PackOut:
    """`envship pack --python PY -o OUT` with ENVSHIP_HOME=home (its build cache)."""
    start = time.perf_counter()
    proc = run([envship_bin(), "pack", "--python", str(python), "-o", str(out), "--json"],
               env=_env(home))
    seconds = time.perf_counter() - start
    try:
        info = json.loads(proc.stdout)
        built = {str(x["digest"]): bool(x.get("built")) for x in info.get("layers", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BenchError(f"unexpected `envship pack --json` output:\n{proc.stdout}") from None
    packed = read_pack_dir(out, seconds)
    return PackOut(packed.seconds, packed.env_id, packed.manifest, packed.blobs, packed.sizes,
                   packed.digests, built)


def envship_ship(python: Path, store: Path, home: Path) -> tuple[float, dict[str, Any]]:
    """`envship ship STORE --python PY --json`; returns (seconds, its JSON report)."""
    start = time.perf_counter()
    proc = run([envship_bin(), "ship", str(store), "--python", str(python), "--json"],
               env=_env(home))
    seconds = time.perf_counter() - start
    try:
        info: dict[str, Any] = json.loads(proc.stdout)
        info["env_id"] = str(info["env_id"])
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"unexpected `envship ship --json` output:\n{proc.stdout}") from None
    return seconds, info


def envship_exec(env_uri: str, cache: Path, cmd: list[str]) -> float:
    """`envship exec ENV -- cmd` with ENVSHIP_CACHE=cache; wall seconds."""
    start = time.perf_counter()
    run([envship_bin(), "exec", env_uri, "--", *cmd], env={"ENVSHIP_CACHE": str(cache)})
    return time.perf_counter() - start


def node_script(dest: Path) -> Path:
    """Write the single-file node runtime (`envship node-script`) to *dest*."""
    proc = run([envship_bin(), "node-script"])
    dest.write_text(proc.stdout)
    os.chmod(dest, 0o755)
    return dest
