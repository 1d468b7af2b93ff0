"""The skein application spec: layers localized as archives, the command run inside the env."""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from ...env import Env
from ...errors import EngineError
from ...node.formats import blob_key, env_key
from ...node.interp import layer_interpreter
from ...node.ref import REF_VAR, parse_ref
from ...node.runtime import LAYER_DIRS_ENV
from ...packing.manifest import Manifest
from ...paths import envship_home
from ..exec import NODE_SCRIPT_NAME, EnvRef
from ..hadoop import HADOOP_SCHEMES, hadoop_url

if TYPE_CHECKING:
    import skein

__all__ = [
    "YarnResources",
    "yarn_resources",
    "bootstrap_script",
    "application_spec",
    "open_env",
    "node_script_file",
    "MANIFEST_NAME",
]

MANIFEST_NAME = "envship-manifest.json"  # localized name of the manifest in each container
_LAYER_PREFIX = "envship-layer-"
_STATE_DIR = ".envship"  # per-container node cache and mini store, under the container's cwd


# paths/URLs localized under their base name, or name -> path/URL
AdditionalFiles: TypeAlias = (
    "Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None"
)


@dataclass(frozen=True)
class YarnResources:
    """What a container needs: resource name -> (source URL, "file" | "archive"), and a script."""

    files: Mapping[str, tuple[str, str]]
    script: str
    env_id: str


def open_env(env: EnvRef, storage_options: Mapping[str, Any] | None = None) -> Env:
    """*env* opened and verified; a tag is pinned to the env it names now, so every container
    runs the same env."""
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
    return Env.coerce(env, storage_options)


def _open(env: EnvRef, storage_options: Mapping[str, Any] | None) -> tuple[str, Manifest]:
    """(store root, verified manifest) of *env*."""
    opened = open_env(env, storage_options)
    return opened.store_url, opened.manifest


def _hadoop_url(url: str, schemes: Mapping[str, str]) -> str:
    return hadoop_url(url, schemes, local_as_file=True)


def bootstrap_script(
    manifest: Manifest, env_id: str, command: str, pre_script_hook: str | None = None
) -> str:
    """The container script: hand the unpacked layers to the node runtime, then run *command*.

    YARN has already unpacked every layer archive into the container's working directory, so
    the node runtime only assembles the env view there (nothing is downloaded again).
    *pre_script_hook* (shell lines) runs in the container's directory just before the command.
    """
    manifest_path = "/".join((_STATE_DIR, "store", *env_key(env_id)))
    lines = [
        "set -e",
        f'ENVSHIP_CACHE="$PWD/{_STATE_DIR}/cache"; export ENVSHIP_CACHE',
        f'mkdir -p "$ENVSHIP_CACHE" "{manifest_path.rsplit("/", 1)[0]}"',
        f'cp {MANIFEST_NAME} "{manifest_path}"',
    ]
    given = ":".join(f"{lay.hex}=$PWD/{_LAYER_PREFIX}{lay.hex}" for lay in manifest.layers)
    lines.append(f'{LAYER_DIRS_ENV}="{given}"; export {LAYER_DIRS_ENV}')
    # The env goes in the environment, not on the command line (readable by every user).
    lines.append(f'{REF_VAR}="$PWD/{manifest_path}"; export {REF_VAR}')
    python = "python3"
    py_layer = manifest.layer("python")
    if py_layer is not None:
        # No Python needed on the node: the shipped interpreter runs the node runtime.
        interp = layer_interpreter(manifest.python.major_minor, py_layer.package is not None)
        python = f'"$PWD/{_LAYER_PREFIX}{py_layer.hex}/{interp}"'
    if pre_script_hook and pre_script_hook.strip():
        lines.append(pre_script_hook.strip("\n"))
    lines.append(f"exec {python} {NODE_SCRIPT_NAME} -- {command}")
    return "\n".join(lines) + "\n"


def yarn_resources(
    env: EnvRef,
    command: str | Sequence[str],
    *,
    node_script: str | os.PathLike[str] | None = None,
    schemes: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    pre_script_hook: str | None = None,
    additional_files: AdditionalFiles = None,
) -> YarnResources:
    """The files to localize and the script to run, without needing skein.

    *schemes* maps fsspec URL schemes to Hadoop ones (default ``{"s3": "s3a"}``);
    *storage_options*: to read the manifest here (they never go into the spec).
    *additional_files*: paths or URLs localized next to the command under their base name
    (or a mapping name -> path/URL).
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
    for name, source in _named_files(additional_files).items():
        if name in files or name.startswith((_LAYER_PREFIX, _STATE_DIR)):
            raise EngineError(f"additional file {name!r}: that name is envship's; rename it")
        files[name] = (_hadoop_url(source, scheme_map), "file")
    return YarnResources(files, bootstrap_script(manifest, env_id, cmd, pre_script_hook), env_id)


def _named_files(additional_files: AdditionalFiles) -> dict[str, str]:
    """name -> source of the extra file resources; names must be plain and unique."""
    if additional_files is None:
        return {}
    if isinstance(additional_files, (str, os.PathLike)):  # one file, not its letters
        additional_files = [additional_files]
    if isinstance(additional_files, Mapping):
        pairs = [(str(k), os.fspath(v)) for k, v in additional_files.items()]
    else:
        pairs = []
        for item in additional_files:
            source = os.fspath(item)
            pairs.append((source.rstrip("/").rpartition("/")[2], source))
    named: dict[str, str] = {}
    for name, source in pairs:
        if not name or name in (".", "..") or "/" in name:
            raise EngineError(f"additional file {source!r}: no usable file name to localize it as")
        if name in named:
            raise EngineError(
                f"additional files {named[name]!r} and {source!r} would both be localized as "
                f"{name!r}; pass a mapping {{name: path}} to name them"
            )
        if "://" not in source and not Path(source).exists():
            raise EngineError(f"additional file {source}: not found")
        if "://" not in source:
            source = os.path.abspath(source)
        named[name] = source
    return named


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
    user: str = "",
    node_label: str = "",
    max_restarts: int = 0,
    pre_script_hook: str | None = None,
    additional_files: AdditionalFiles = None,
    extra_files: Mapping[str, tuple[str, str]] | None = None,
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

    As cluster-pack's ``skein_launcher.submit``: *user* submits as that user (impersonation:
    the submitter must be a Hadoop proxy user), *node_label* places the containers,
    *max_restarts* restarts a failed container that many times, *pre_script_hook* (shell)
    runs in the container before the command, *additional_files* are localized beside it.
    *extra_files* (name -> (source URL, "file" | "archive")) are added as they are.
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
    if max_restarts < 0:
        raise EngineError(f"max_restarts={max_restarts}: use 0 or more (-1 is not allowed here)")
    res = yarn_resources(env, command, node_script=node_script, schemes=schemes,
                         storage_options=storage_options, pre_script_hook=pre_script_hook,
                         additional_files=additional_files)
    merged = dict(res.files)
    for dest, resource in (extra_files or {}).items():
        if dest in merged:
            raise EngineError(f"file resource {dest!r} given twice")
        merged[dest] = resource
    files = {
        dest: skein.File(
            source=src, type=kind, visibility=layer_visibility if kind == "archive" else "private"
        )
        for dest, (src, kind) in merged.items()
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
        max_restarts=max_restarts,
        node_label=node_label,
    )
    return skein.ApplicationSpec(
        name=name,
        queue=queue,
        user=user,
        services={"envship": service},
        max_attempts=max_attempts,
        tags=list(tags),
        file_systems=list(file_systems),
    )


def node_script_file(directory: str | os.PathLike[str] | None = None) -> Path:
    """Write the single-file node runtime once, content-addressed, and return its path."""
    from ...node.script import script_text

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



