"""Integrity end to end: env ids, layer digests, tags, presigned manifests, agreement with core."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envship.node import NodeError, prepare
from envship.node.resolve import env_id_of
from envship.packing.manifest import Distribution, Manifest
from kits.nodekit import (
    ENVSHIP,
    Store,
    blob_from_members,
    file_member,
    make_manifest,
    node_env,
    write_store,
    write_tag,
)


def test_node_and_manifest_agree_on_env_ids(small_store: Store) -> None:
    manifests = [
        make_manifest(small_store.blobs),
        make_manifest(
            small_store.blobs,
            console_scripts={"zé": "mod:fn", "a": "b:c"},  # non-ASCII: ensure_ascii=False
            distributions=[Distribution("Ünïcode", "1.0", "index", "code")],
        ),
    ]
    for m in manifests:
        obj = json.loads(m.to_json())
        assert env_id_of(obj) == m.env_id
        # layer urls never change the id
        for lay in obj["layers"]:
            lay["url"] = "https://example.invalid/blob?sig=secret"
        assert env_id_of(obj) == m.env_id
        assert Manifest.from_dict(obj, presigned=True).env_id == m.env_id


def test_layer_digest_mismatch_is_refused(tmp_path: Path) -> None:
    good = blob_from_members("deps", [file_member("site-packages/a.py", b"A = 1\n")])
    evil = blob_from_members("deps", [file_member("site-packages/a.py", b"A = 666\n")])
    m = make_manifest([good])
    root = tmp_path / "store"
    uri = write_store(root, m, [good])
    # whoever can write to the store swaps the blob bytes
    (root / "blobs" / "sha256" / f"{good.hex}.tar.gz").write_bytes(evil.data)
    with pytest.raises(NodeError, match="layer deps.*tampered"):
        prepare(uri, cache_dir=tmp_path / "cache")
    assert os.listdir(tmp_path / "cache" / "layers") == []
    # garbage of the right size fails the same way
    (root / "blobs" / "sha256" / f"{good.hex}.tar.gz").write_bytes(b"\0" * len(good.data))
    with pytest.raises(NodeError, match="tampered"):
        prepare(uri, cache_dir=tmp_path / "cache")


def test_edited_manifest_is_refused(small_store: Store, tmp_path: Path) -> None:
    obj = json.loads(small_store.uri.read_bytes())
    obj["entry_points"]["console_scripts"]["tiny"] = "os:system"
    small_store.uri.write_text(json.dumps(obj))
    with pytest.raises(NodeError, match="does not match the env id"):
        prepare(small_store.uri, cache_dir=tmp_path / "cache")
    proc = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(tmp_path / "c2"), str(small_store.uri), "--", "true"],
        capture_output=True, text=True, env=node_env(),
    )
    assert proc.returncode == 1 and "does not match the env id" in proc.stderr


def test_tag_is_followed_then_verified(small_store: Store, tmp_path: Path) -> None:
    tag = write_tag(small_store.root, "prod", small_store.env_id)
    view = prepare(tag, cache_dir=tmp_path / "cache")
    assert view.env_id == small_store.env_id
    # a tag naming an env whose manifest was edited is refused like the env URI itself
    other = make_manifest(small_store.blobs, console_scripts={"x": "a:b"})
    obj = json.loads(other.to_json())
    obj["excluded"] = [{"name": "sneaky", "version": "1", "reason": "x"}]
    (small_store.root / "envs" / f"{other.env_id}.json").write_text(json.dumps(obj))
    write_tag(small_store.root, "prod", other.env_id)
    with pytest.raises(NodeError, match="does not match"):
        prepare(tag, cache_dir=tmp_path / "cache")


def test_presigned_manifest_over_http(small_store: Store, tmp_path: Path, serve: object) -> None:
    server = serve(small_store.root)  # type: ignore[operator]
    obj = json.loads(small_store.uri.read_bytes())
    for lay in obj["layers"]:
        lay["url"] = f"{server.url}/blobs/sha256/{lay['digest'][7:]}.tar.gz?X-Sig=secret"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    presigned = elsewhere / f"{small_store.env_id}.presigned.json"
    presigned.write_text(json.dumps(obj))
    view = prepare(presigned, cache_dir=tmp_path / "cache")
    assert view.env_id == small_store.env_id
    assert server.counts[f"/blobs/sha256/{small_store.blobs[0].hex}.tar.gz"] == 1
    # served over http too, with the presigned manifest itself behind a URL with a query
    (small_store.root / "p").mkdir()
    (small_store.root / "p" / presigned.name).write_text(json.dumps(obj))
    view2 = prepare(f"{server.url}/p/{presigned.name}?sig=abc", cache_dir=tmp_path / "cache2")
    assert view2.env_id == small_store.env_id


def test_http_errors_do_not_leak_signatures(tmp_path: Path, serve: object) -> None:
    server = serve(tmp_path)  # type: ignore[operator]
    missing = f"{server.url}/envs/{'a' * 64}.json?X-Amz-Signature=topsecret"
    with pytest.raises(NodeError) as err:
        prepare(missing, cache_dir=tmp_path / "cache")
    assert "not found" in str(err.value) and "topsecret" not in str(err.value)


def test_not_an_env_reference(tmp_path: Path) -> None:
    f = tmp_path / "manifest.json"
    f.write_text("{}")
    with pytest.raises(NodeError, match="not an env reference"):
        prepare(f, cache_dir=tmp_path / "cache")
    with pytest.raises(NodeError, match="not an env reference") as err:
        prepare("https://h/x/manifest.json?X-Amz-Signature=topsecret", cache_dir=tmp_path / "c")
    assert "topsecret" not in str(err.value)
    with pytest.raises(NodeError, match="exactly one"):
        prepare(tmp_path, cache_dir=tmp_path / "cache")


def test_interrupted_download_is_retried(small_store: Store, tmp_path: Path) -> None:
    import http.server
    import threading

    gets: list[str] = []
    root = small_store.root

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            gets.append(self.path)
            data = (root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            first_blob_get = self.path.startswith("/blobs/") and gets.count(self.path) == 1
            self.wfile.write(data[: len(data) // 2] if first_blob_get else data)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}/envs/{small_store.env_id}.json"
        proc = subprocess.run(
            [ENVSHIP, "exec", "-v", "--cache", str(tmp_path / "cache"), uri, "--", "tiny"],
            capture_output=True, text=True, env=node_env(),
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "tiny says hi"
        assert "download ended after" in proc.stderr and "trying again" in proc.stderr
        blob_path = f"/blobs/sha256/{small_store.blobs[0].hex}.tar.gz"
        assert gets.count(blob_path) == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
