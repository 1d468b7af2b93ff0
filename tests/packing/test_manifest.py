"""Manifest format: canonical JSON, env id, validation errors."""

from __future__ import annotations

import json

import pytest

from envship.errors import ManifestError
from envship.packing.manifest import Distribution, LayerRef, Manifest, PythonInfo

DIGEST = "sha256:" + "ab" * 32


def _manifest(**kw: object) -> Manifest:
    base: dict[str, object] = dict(
        python=PythonInfo("cpython", "3.11.7", "cp311", "manylinux_2_36_x86_64"),
        layers=(LayerRef("deps", DIGEST, 10, 2),),
        distributions=(Distribution("numpy", "2.0", "index", "deps"),),
        entry_points={"console_scripts": {"b": "m:b", "a": "m:a"}},
    )
    base.update(kw)
    return Manifest(**base)  # type: ignore[arg-type]


def test_round_trip_keeps_env_id_and_is_canonical() -> None:
    m = _manifest()
    raw = m.to_json()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    again = Manifest.from_json(raw)
    assert again == m
    assert again.env_id == m.env_id and len(m.env_id) == 64


def test_env_id_ignores_presigned_urls_but_not_content() -> None:
    m = _manifest()
    signed = _manifest(layers=(LayerRef("deps", DIGEST, 10, 2, url="https://x/y?sig=1"),))
    assert signed.env_id == m.env_id
    assert b"https://x/y" in signed.to_json()
    other = _manifest(layers=(LayerRef("deps", "sha256:" + "cd" * 32, 10, 2),))
    assert other.env_id != m.env_id


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d.update(schema="envship.manifest/9"), "unknown schema"),
        (lambda d: d["layers"][0].update(digest="md5:00"), "sha256"),
        (lambda d: d["layers"][0].update(kind="weird"), "unknown layer kind"),
        (lambda d: d["layers"][0].update(size=-1), "size"),
        (lambda d: d.pop("python"), "python"),
    ],
)
def test_bad_manifest_gives_clear_error(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(_manifest().to_json())
    mutate(data)
    with pytest.raises(ManifestError, match=needle):
        Manifest.from_json(json.dumps(data), source="envs/x.json")


def test_not_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json(b"\x00garbage")
