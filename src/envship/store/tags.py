"""Tags: mutable named pointers `tags/<name>.json` = `{"env": "<env-id>"}`."""

from __future__ import annotations

import json
import re

from ..errors import EnvNotFound, ManifestError, StoreError
from ..node.formats import TAGS, env_key, is_hex64, parse_document, tag_key, tag_name
from .io import NotFound, Refused, StoreIO
from .protocol import Step, Timing, no_step

__all__ = ["BadTag", "check_tag_name", "set_tag", "read_tag", "list_tags", "all_tags"]

_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadTag(StoreError):
    """A file under the tags folder that is not a tag."""


def check_tag_name(name: str) -> str:
    if not _TAG_RE.fullmatch(name) or name.endswith(".json"):
        raise StoreError(
            f"bad tag name {name!r}: use letters, digits, '.', '_' and '-' (not first), "
            "at most 128 characters, not ending in '.json'"
        )
    return name


def set_tag(io: StoreIO, name: str, env_id: str, timing: Timing | None = None,
            step: Step = no_step) -> str:
    """Point tag *name* at *env_id* (which must exist); returns the tag's URI.

    Under a lease on the env, so a gc collecting it either spares it or is waited out (and
    then the env is gone: EnvNotFound, never a tag pointing at nothing).
    """
    from .protocol.claim import claim, release

    check_tag_name(name)
    if not is_hex64(env_id):
        raise StoreError(f"bad env id {env_id!r}: expected 64 hex digits")
    got = claim(io, env_id, (), lambda: io.exists(env_key(env_id), f"env {env_id}"),
                lambda _: False, timing or Timing(), step=step, writes=True)
    try:
        if not got.manifest_present:
            raise EnvNotFound(f"env {env_id} not found in store {io.url}; ship it first")
        data = json.dumps({"env": env_id}, sort_keys=True).encode() + b"\n"
        io.write(tag_key(name), data, f"tag {name}")
        step("tag-written")
    finally:
        release(io, got)
    return io.url_of(tag_key(name))


def _parse_tag(data: bytes, where: str) -> str:
    try:
        env_id = parse_document(data, where, "tag")["env"]
    except (ManifestError, KeyError, TypeError):
        env_id = None
    if not is_hex64(env_id):
        raise BadTag(f'{where} is not a tag file ({{"env": "<env-id>"}}); write it again '
                         "with `envship tag`")
    return str(env_id)


def read_tag(io: StoreIO, name: str) -> str:
    """The env id tag *name* points at; NotFound if there is no such tag."""
    check_tag_name(name)
    return _read(io, name)


def _read(io: StoreIO, name: str) -> str:
    data = io.read(tag_key(name), f"tag {name!r}")
    return _parse_tag(data, io.url_of(tag_key(name)))


def all_tags(io: StoreIO) -> dict[str, str | BadTag]:
    """tag name -> env id, or why its file is not a tag (a tag removed meanwhile is left out)."""
    out: dict[str, str | BadTag] = {}
    for entry in io.entries(TAGS):
        name = tag_name(entry.name)
        if name is None:
            continue
        try:
            out[name] = _read(io, name)
        except NotFound:
            continue
        except (BadTag, Refused) as exc:
            out[name] = BadTag(str(exc))
    return dict(sorted(out.items()))


def list_tags(io: StoreIO) -> dict[str, str]:
    """tag name -> env id, for every readable tag in the store."""
    return {name: env_id for name, env_id in all_tags(io).items() if isinstance(env_id, str)}
