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
        (lambda d: d.update(schema="envship.manifest/9"), "unknown manifest schema"),
        (lambda d: d["layers"][0].update(digest="md5:00"), "sha256"),
        (lambda d: d["layers"][0].update(kind="weird"), "kind is not one of"),
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


SCHEMA_1_RAW = (
    '{"distributions":[{"layer":"deps","name":"numpy","source":"index","version":"2.0"},'
    '{"layer":"code","name":"mylib","source":"editable","version":"0.1"}],'
    '"entry_points":{"console_scripts":{"a":"m:a"}},"excluded":[],'
    '"layers":[{"digest":"sha256:' + "cd" * 32 + '","files":1,"kind":"code","size":5},'
    '{"digest":"' + DIGEST + '","files":2,"kind":"deps","size":10}],'
    '"python":{"abi":"cp311","implementation":"cpython","platform":"linux_x86_64",'
    '"version":"3.11.7"},"schema":"envship.manifest/1"}'
).encode()


def test_schema_1_manifest_still_parses_with_its_env_id() -> None:
    import hashlib

    m = Manifest.from_json(SCHEMA_1_RAW)
    assert m.schema_id == "envship.manifest/1"
    assert m.to_json() == SCHEMA_1_RAW  # written back byte for byte: same env id
    assert m.env_id == hashlib.sha256(SCHEMA_1_RAW).hexdigest()
    assert m.python.cache_tag is None
    deps = m.layer("deps")
    assert deps is not None and m.layer_of("numpy") == deps
    assert (deps.dists, deps.bytecode) == ((), None)


def _schema_2() -> Manifest:
    code = LayerRef("code", "sha256:" + "cd" * 32, 5, 1, dists=("mylib==0.1",),
                    bytecode="packed")
    dist = LayerRef("dist", DIGEST, 10, 2, dists=("numpy==2.0",), bytecode="node")
    return Manifest(
        python=PythonInfo("cpython", "3.11.7", "cp311", "linux_x86_64", "cpython-311"),
        layers=(code, dist),
        distributions=(Distribution("mylib", "0.1", "editable", code.digest),
                       Distribution("numpy", "2.0", "index", dist.digest)),
    )


def test_schema_2_round_trip_and_fields() -> None:
    m = _schema_2()
    data = json.loads(m.to_json())
    assert data["schema"] == "envship.manifest/2"
    assert data["python"]["cache_tag"] == "cpython-311"
    assert data["layers"][1] == {"kind": "dist", "digest": DIGEST, "size": 10, "files": 2,
                                 "dists": ["numpy==2.0"], "bytecode": "node"}
    assert data["distributions"][1]["layer"] == DIGEST
    again = Manifest.from_json(m.to_json())
    assert again == m and again.env_id == m.env_id
    assert again.layer_of("numpy") == m.layers[1]


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["layers"][1].update(kind="deps"), "kind is not one of python, code, dist"),
        (lambda d: d["layers"][1].update(bytecode="maybe"), "bytecode"),
        (lambda d: d["layers"][1].update(dists=[]), "'dists' is not a list"),
        (lambda d: d["distributions"][0].update(layer="code"), "names no layer"),
        (lambda d: d["layers"].append(dict(d["layers"][1])), "the same digest twice"),
    ],
)
def test_bad_schema_2_manifest(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(_schema_2().to_json())
    mutate(data)
    with pytest.raises(ManifestError, match=needle):
        Manifest.from_json(json.dumps(data), source="envs/x.json")
