"""YARN: a skein application spec that localizes the layers as archives and runs inside the env."""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..env import Env
from ..errors import EngineError
from ..node.formats import blob_key, env_key
from ..node.ref import parse_ref
from ..packing.manifest import Manifest
from ..paths import envship_home
from .exec import NODE_SCRIPT_NAME, EnvRef
from .hadoop import HADOOP_SCHEMES, hadoop_url

if TYPE_CHECKING:
    import skein

__all__ = [
    "YarnResources",
    "yarn_resources",
    "bootstrap_script",
    "application_spec",
    "submit",
    "node_script_file",
    "MANIFEST_NAME",
]

MANIFEST_NAME = "envship-manifest.json"  # localized name of the manifest in each container
_LAYER_PREFIX = "envship-layer-"
_STATE_DIR = ".envship"  # per-container node cache and mini store, under the container's cwd


@dataclass(frozen=True)
class YarnResources:
    """What a container needs: resource name -> (source URL, "file" | "archive"), and a script."""

    files: Mapping[str, tuple[str, str]]
    script: str
    env_id: str


def _open(env: EnvRef, storage_options: Mapping[str, Any] | None) -> tuple[str, Manifest]:
    """(store root, verified manifest) of *env*; a tag is pinned to the env it names now, so
    every container runs the same env."""
    uri = Env.uri_of(env)
    try:
        kind = parse_ref(uri).kind
    except ValueError:
        kind = ""
    if kind not in ("env", "tag"):
        raise EngineError(
            f"{uri}: YARN needs an env URI of the form <store>/envs/<env-id>.json (or a tag URI) "
            "on a filesystem Hadoop can read (hdfs://, s3a://, abfs://, file://...); "
            "use the URI `envship ship` printed"
        )
    opened = Env.coerce(env, storage_options)
    return opened.store_url, opened.manifest


def _hadoop_url(url: str, schemes: Mapping[str, str]) -> str:
    return hadoop_url(url, schemes, local_as_file=True)


def bootstrap_script(manifest: Manifest, env_id: str, command: str) -> str:
    """The container script: link the unpacked layers into a node cache, then run *command*.

    YARN has already unpacked every layer archive into the container's working directory, so
    the node runtime only assembles the env view there (nothing is downloaded again).
    """
    manifest_path = "/".join((_STATE_DIR, "store", *env_key(env_id)))
    lines = [
        "set -e",
        f'ENVSHIP_CACHE="$PWD/{_STATE_DIR}/cache"; export ENVSHIP_CACHE',
        f'mkdir -p "$ENVSHIP_CACHE/layers" "{manifest_path.rsplit("/", 1)[0]}"',
        f'cp {MANIFEST_NAME} "{manifest_path}"',
    ]
    for lay in manifest.layers:
        lines.append(f'ln -sfn "$PWD/{_LAYER_PREFIX}{lay.hex}" "$ENVSHIP_CACHE/layers/{lay.hex}"')
    python = "python3"
    py_layer = manifest.layer("python")
    if py_layer is not None:
        # No Python needed on the node: the shipped interpreter runs the node runtime.
        interp = f"python/bin/python{manifest.python.major_minor}"
        python = f'"$PWD/{_LAYER_PREFIX}{py_layer.hex}/{interp}"'
    lines.append(
        f'exec {python} {NODE_SCRIPT_NAME} "{manifest_path}" -- {command}'
    )
    return "\n".join(lines) + "\n"


def yarn_resources(
    env: EnvRef,
    command: str | Sequence[str],
    *,
    node_script: str | os.PathLike[str] | None = None,
    schemes: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> YarnResources:
    """The files to localize and the script to run, without needing skein.

    *schemes* maps fsspec URL schemes to Hadoop ones (default ``{"s3": "s3a"}``);
    *storage_options*: to read the manifest here (they never go into the spec).
    """
    root, manifest = _open(env, storage_options)
    env_id = manifest.env_id
    scheme_map = HADOOP_SCHEMES if schemes is None else dict(schemes)
    cmd = command if isinstance(command, str) else shlex.join(command)
    if not cmd.strip():
        raise EngineError("no command to run in the YARN containers")
    script_path = os.fspath(node_script) if node_script is not None else str(node_script_file())
    files: dict[str, tuple[str, str]] = {
        NODE_SCRIPT_NAME: (_hadoop_url(script_path, scheme_map), "file"),
        MANIFEST_NAME: (_hadoop_url("/".join((root, *env_key(env_id))), scheme_map), "file"),
    }
    for lay in manifest.layers:
        blob = "/".join((root, *blob_key(lay.digest)))
        files[_LAYER_PREFIX + lay.hex] = (_hadoop_url(blob, scheme_map), "archive")
    return YarnResources(files, bootstrap_script(manifest, env_id, cmd), env_id)


def application_spec(
    env: EnvRef,
    command: str | Sequence[str],
    *,
    name: str = "envship",
    queue: str = "default",
    instances: int = 1,
    memory: str | int = "2 GiB",
    vcores: int = 1,
    env_vars: Mapping[str, str] | None = None,
    node_script: str | os.PathLike[str] | None = None,
    schemes: Mapping[str, str] | None = None,
    max_attempts: int = 1,
    tags: Sequence[str] = (),
    file_systems: Sequence[str] | None = None,
    layer_visibility: str = "public",
    storage_options: Mapping[str, Any] | None = None,
) -> skein.ApplicationSpec:
    """A skein ``ApplicationSpec`` with one service, ``envship``, running *command* in *env*.

    Each layer blob is one YARN archive resource, PUBLIC by default: a NodeManager localizes it
    once and shares it with every application and user that names the same blob (blobs are
    content-addressed, so envs sharing a package share its resource). YARN only accepts PUBLIC
    resources that are world-readable in the store; for a private store pass
    ``layer_visibility="private"`` (shared across one user's applications) or
    ``"application"``. The node runtime and the manifest are private file resources. The spec
    holds URLs only: on a Kerberized cluster skein obtains delegation tokens for the default
    filesystem and *file_systems* (default: the store's, if not local).
    """
    try:
        import skein
    except ImportError as exc:
        raise EngineError(
            "envship.yarn.application_spec needs skein: pip install 'envship[yarn]'"
        ) from exc
    if layer_visibility not in ("public", "private", "application"):
        raise EngineError(
            f"layer_visibility={layer_visibility!r}: use public, private or application"
        )
    res = yarn_resources(env, command, node_script=node_script, schemes=schemes,
                         storage_options=storage_options)
    files = {
        dest: skein.File(
            source=src, type=kind, visibility=layer_visibility if kind == "archive" else "private"
        )
        for dest, (src, kind) in res.files.items()
    }
    if file_systems is None:
        store_url = res.files[MANIFEST_NAME][0]
        parts = urlsplit(store_url)
        file_systems = [] if parts.scheme == "file" else [f"{parts.scheme}://{parts.netloc}"]
    service = skein.Service(
        resources=skein.Resources(memory=memory, vcores=vcores),
        script=res.script,
        instances=instances,
        files=files,
        env=dict(env_vars or {}),
        max_restarts=0,
    )
    return skein.ApplicationSpec(
        name=name,
        queue=queue,
        services={"envship": service},
        max_attempts=max_attempts,
        tags=list(tags),
        file_systems=list(file_systems),
    )


def submit(spec: skein.ApplicationSpec, *, client: skein.Client | None = None) -> str:
    """Submit *spec* to YARN (a running cluster and skein's driver are needed); return app id."""
    try:
        import skein
    except ImportError as exc:
        raise EngineError("envship.yarn.submit needs skein: pip install 'envship[yarn]'") from exc
    try:
        if client is not None:
            return str(client.submit(spec))
        with skein.Client() as own:
            return str(own.submit(spec))
    except Exception as exc:  # skein raises its own, grpc and Java errors alike
        raise EngineError(
            f"YARN rejected or could not receive the application ({type(exc).__name__}: {exc}); "
            "check that HADOOP_CONF_DIR points at the cluster and you hold a Kerberos ticket "
            "(kinit) if the cluster needs one"
        ) from exc


def node_script_file(directory: str | os.PathLike[str] | None = None) -> Path:
    """Write the single-file node runtime once, content-addressed, and return its path."""
    from ..node.script import script_text

    text = script_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    base = Path(directory) if directory is not None else envship_home() / "node-script"
    path = base / digest / NODE_SCRIPT_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{NODE_SCRIPT_NAME}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path



