"""Tags: mutable named pointers `tags/<name>.json` = `{"env": "<env-id>"}`."""

from __future__ import annotations

import json
import re

from ..errors import StoreError
from . import retry
from .fetch import read_text
from .fs import StoreLocation
from .protocol import Step, Timing, no_step
from .transfer import write_bytes

__all__ = ["check_tag_name", "set_tag", "read_tag", "list_tags", "list_env_ids", "ENV_ID_RE"]

ENV_ID_RE = re.compile(r"[0-9a-f]{64}")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_tag_name(name: str) -> str:
    if not _TAG_RE.fullmatch(name) or name.endswith(".json"):
        raise StoreError(
            f"bad tag name {name!r}: use letters, digits, '.', '_' and '-' (not first), "
            "at most 128 characters"
        )
    return name


def _names(loc: StoreLocation, folder: str, policy: retry.RetryPolicy) -> list[str]:
    def ls() -> list[str]:
        try:
            entries = loc.ls(loc.path(folder), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rpartition("/")[2] for e in entries)

    try:
        return retry.call(ls, f"listing {folder}/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, f"listing {folder}/", loc) from None


def list_env_ids(loc: StoreLocation, policy: retry.RetryPolicy) -> list[str]:
    """Env ids with a manifest in the store (presigned/provenance side files excluded)."""
    out = []
    for name in _names(loc, "envs", policy):
        stem, _, ext = name.partition(".")
        if ext == "json" and ENV_ID_RE.fullmatch(stem):
            out.append(stem)
    return out


def set_tag(loc: StoreLocation, name: str, env_id: str, policy: retry.RetryPolicy,
            timing: Timing | None = None, step: Step = no_step) -> str:
    """Point tag *name* at *env_id* (which must exist); returns the tag's URI.

    Under a lease on the env, so a gc collecting it either spares it or is waited out (and
    then the env is gone: an error, never a tag pointing at nothing).
    """
    from .claim import claim, release

    check_tag_name(name)
    if not ENV_ID_RE.fullmatch(env_id):
        raise StoreError(f"bad env id {env_id!r}: expected 64 hex digits")

    def exists() -> bool:
        def look() -> bool:
            loc.fs.invalidate_cache(loc.env_path(env_id))
            return bool(loc.fs.exists(loc.env_path(env_id)))

        return retry.call(look, f"looking up env {env_id}", loc, policy)

    try:
        got = claim(loc, env_id, (), exists, lambda _: False, policy, timing or Timing(),
                    step=step, writes=True)
    except Exception as exc:
        raise retry.as_store_error(exc, f"writing tag {name}", loc) from None
    try:
        if not got.manifest_present:
            raise StoreError(f"env {env_id} not found in store {loc.url}; ship it first")
        data = json.dumps({"env": env_id}, sort_keys=True).encode() + b"\n"
        retry.call(
            lambda: write_bytes(loc, loc.tag_path(name), data), f"writing tag {name}", loc, policy
        )
        step("tag-written")
    except StoreError:
        raise
    except Exception as exc:
        raise retry.as_store_error(exc, f"writing tag {name}", loc) from None
    finally:
        release(loc, got, policy)
    return loc.url_of("tags", f"{name}.json")


def _parse_tag(data: bytes, where: str) -> str:
    try:
        env_id = json.loads(data)["env"]
    except (ValueError, KeyError, TypeError, RecursionError):
        env_id = None
    if not isinstance(env_id, str) or not ENV_ID_RE.fullmatch(env_id):
        raise StoreError(f'{where} is not a tag file ({{"env": "<env-id>"}}); write it again '
                         "with `envship tag`")
    return env_id


def read_tag(loc: StoreLocation, name: str, policy: retry.RetryPolicy) -> str:
    check_tag_name(name)
    data = read_text(loc, loc.tag_path(name), f"tag {name!r}", policy)
    return _parse_tag(data, loc.url_of("tags", f"{name}.json"))


def list_tags(loc: StoreLocation, policy: retry.RetryPolicy) -> dict[str, str]:
    """tag name -> env id, for every readable tag in the store."""
    tags: dict[str, str] = {}
    for name in _names(loc, "tags", policy):
        if not name.endswith(".json") or name.startswith("."):
            continue
        stem = name[: -len(".json")]
        try:
            tags[stem] = read_tag(loc, stem, policy)
        except StoreError:
            continue  # a foreign or damaged file under tags/ is not a tag
    return tags
