"""One validator for every reader: a table of mutated manifests, each stored under its own env
id, judged by `inspect`, `diff`, `store verify`, `Env.open`, the node runtime (module and
single file) and `exec`; all agree, with the same one-line message."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envship.cli import run as run_cli
from envship.env import Env
from envship.errors import EnvshipError, ManifestError
from envship.node import formats
from envship.node.__main__ import main as node_main
from envship.node.resolve import resolve
from envship.node.script import write_script
from envship.packing.manifest import Manifest
from envship.store import open_store

H = ["sha256:" + c * 64 for c in "abcdef"]
PY2 = {"implementation": "cpython", "version": "3.11.7", "abi": "cp311",
       "platform": "linux_x86_64", "cache_tag": "cpython-311"}


def schema_3() -> dict[str, Any]:
    """A valid conda + pip schema 3 manifest: python, conda, code, dist layers."""
    pkg = {"name": "python", "version": "3.11.7", "build": "h0_0", "subdir": "linux-64"}
    return {
        "schema": "envship.manifest/3",
        "python": dict(PY2),
        "layers": [
            {"kind": "python", "digest": H[0], "size": 10, "files": 3, "unpacked": 30,
             "bytecode": "packed", "package": pkg,
             "relocations": [{"path": "lib/python3.11/_sysconfigdata.py",
                              "placeholder": "/opt/placeholder", "mode": "text"}]},
            {"kind": "conda", "digest": H[1], "size": 10, "files": 2, "unpacked": 20,
             "bytecode": "none",
             "package": {"name": "libfoo", "version": "1.0", "build": "h1_0",
                         "subdir": "linux-64"},
             "relocations": [{"path": "etc/foo.conf", "placeholder": "/opt/placeholder",
                              "mode": "text"},
                             {"path": "lib/libfoo.so.1", "placeholder": "/opt/placeholder",
                              "mode": "binary"}]},
            {"kind": "conda", "digest": H[2], "size": 10, "files": 2, "unpacked": 20,
             "bytecode": "packed",
             "package": {"name": "nox", "version": "2", "build": "py_0", "subdir": "noarch",
                         "noarch": "python"},
             "relocations": [], "entry_points": ["nox = nox.cli:main"]},
            {"kind": "code", "digest": H[3], "size": 5, "files": 1, "unpacked": 9,
             "dists": ["mylib==0.1"], "bytecode": "packed"},
            {"kind": "dist", "digest": H[4], "size": 10, "files": 2, "unpacked": 40,
             "dists": ["six==1.16.0"], "bytecode": "node"},
        ],
        "distributions": [
            {"name": "mylib", "version": "0.1", "source": "editable", "layer": H[3]},
            {"name": "nox", "version": "2", "source": "conda", "layer": H[2]},
            {"name": "six", "version": "1.16.0", "source": "index", "layer": H[4]},
        ],
        "entry_points": {"console_scripts": {"mylib": "mylib:main"}},
        "excluded": [{"name": "pip", "version": "24.0", "reason": "installer"}],
    }


def schema_2() -> dict[str, Any]:
    m = schema_3()
    m["schema"] = "envship.manifest/2"
    m["layers"] = [{k: v for k, v in lay.items() if k != "unpacked"}
                   for lay in m["layers"] if lay["kind"] in ("code", "dist")]
    m["distributions"] = [d for d in m["distributions"] if d["source"] != "conda"]
    return m


def schema_1() -> dict[str, Any]:
    return {
        "schema": "envship.manifest/1",
        "python": {k: v for k, v in PY2.items() if k != "cache_tag"},
        "layers": [{"kind": "deps", "digest": H[4], "size": 10, "files": 2}],
        "distributions": [{"name": "six", "version": "1.16.0", "source": "index",
                           "layer": "deps"}],
        "entry_points": {}, "excluded": [],
    }


Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = m
        for part in head:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return mutate


def _drop(path: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = m
        for part in head:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[int(last) if last.isdigit() else last]
    return mutate


# (base, mutation, what the one message says)
BAD: list[tuple[Callable[[], dict[str, Any]], Mutation, str]] = [
    (schema_3, _set("schema", "envship.manifest/9"), "unknown manifest schema"),
    (schema_3, _drop("python.cache_tag"), "bad 'python' field"),
    (schema_2, _drop("python.cache_tag"), "bad 'python' field"),
    (schema_3, _set("python.extra", "x"), "unknown key 'extra'"),
    (schema_3, _drop("excluded"), "missing field 'excluded'"),
    (schema_3, _set("created", "2026-01-01"), "unknown field 'created'"),
    (schema_3, _set("layers", []), "bad 'layers' field"),
    (schema_3, _drop("layers.3.unpacked"), "no 'unpacked'"),
    (schema_3, _set("layers.4.unpacked", -1), "'unpacked' is not a non-negative integer"),
    (schema_3, _set("layers.4.files", True), "'files' is not a non-negative integer"),
    (schema_3, _set("layers.4.digest", "md5:00"), "digest is not 'sha256:<64 hex>'"),
    (schema_3, _set("layers.4.kind", "deps"), "kind is not one of"),
    (schema_3, _set("layers.4.bytecode", None), "'bytecode' is not one of"),
    (schema_2, _set("layers.1.bytecode", None), "'bytecode' is not one of"),
    (schema_3, _set("layers.4.dists", []), "'dists' is not a list"),
    (schema_3, lambda m: m["layers"].reverse(), "layers out of order"),
    (schema_2, lambda m: m["layers"].reverse(), "layers out of order"),
    (schema_3, lambda m: m["layers"].append(dict(m["layers"][4])), "the same digest twice"),
    (schema_3, _set("layers.4.url", "https://elsewhere/x"), "a layer 'url' in an ordinary"),
    (schema_2, _set("layers.1.url", "/etc/shadow"), "a layer 'url' in an ordinary"),
    (schema_3, _drop("layers.1.package"), "a conda layer needs 'package'"),
    (schema_3, _set("layers.1.package.build", 3), "'package' needs string"),
    (schema_3, _set("layers.1.relocations.0.path", "../etc/passwd"), "bad relocation"),
    (schema_3, _set("layers.1.relocations.0.mode", "rwx"), "bad relocation"),
    (schema_3, lambda m: m["layers"][1]["relocations"].reverse(), "not sorted by path"),
    (schema_3, _set("layers.1.entry_points", ["x = y:z"]), "noarch python"),
    (schema_3, _set("layers.4.package", {"name": "six"}), "a dist layer holds no 'package'"),
    (schema_3, _set("distributions.0.layer", "code"), "names no layer"),
    (schema_1, lambda m: m["layers"].append(dict(m["layers"][0], digest=H[5])),
     "a second deps layer"),
    (schema_1, _set("entry_points", {"console_scripts": {"a": 1}}), "bad 'entry_points'"),
]
GOOD = [schema_1, schema_2, schema_3]


def _problem(message: str) -> str:
    """The message without its leading source (a path or URL, spelled by each reader)."""
    head, sep, rest = message.partition(": ")
    return rest if sep else message


def _store(tmp: Path, manifest: dict[str, Any]) -> str:
    """Write *manifest* under its own env id in a store at *tmp*; its env URI."""
    env_id = formats.env_id_of(manifest)
    path = tmp.joinpath(*formats.env_key(env_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(formats.canonical_json(manifest))
    return str(path)


def _message(fn: Callable[[], object]) -> str:
    with pytest.raises(EnvshipError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """(env URI, the validator's problem text, the expected needle) per BAD row."""
    out = []
    for i, (base, mutate, needle) in enumerate(BAD):
        manifest = copy.deepcopy(base())
        mutate(manifest)
        uri = _store(tmp_path_factory.mktemp(f"bad{i}"), manifest)
        with pytest.raises(ManifestError) as info:
            formats.check_manifest(manifest, "m")
        out.append((uri, _problem(str(info.value)), needle))
    return out


def test_the_table_mutates_valid_manifests() -> None:
    for build in GOOD:
        formats.check_manifest(build(), "m")
        m = Manifest.from_dict(build())
        assert m.env_id == formats.env_id_of(build())  # typed view and raw bytes agree
        assert m.hashed_dict() == build()


@pytest.mark.parametrize("row", range(len(BAD)))
def test_every_library_reader_refuses_with_the_same_message(
    cases: list[tuple[str, str, str]], row: int
) -> None:
    uri, problem, needle = cases[row]
    assert needle in problem
    assert problem.endswith("re-create it with `envship pack`")
    raw = json.loads(Path(uri).read_bytes())
    readers: dict[str, Callable[[], object]] = {
        "Manifest.from_dict": lambda: Manifest.from_dict(raw, source="x"),
        "node resolve": lambda: resolve(uri),
        "Env.open": lambda: Env.open(uri),
    }
    for name, read in readers.items():
        assert _problem(_message(read)) == problem, name


def _cli(args: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`envship ARGS` in this process (as the console script runs it): exit code, output."""
    monkeypatch.setattr(sys, "argv", ["envship", *args])
    with pytest.raises(SystemExit) as info:
        run_cli()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


def test_cli_readers_and_store_verify_agree(
    cases: list[tuple[str, str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = _store(tmp_path / "good", schema_3())
    for uri, problem, _ in cases:
        store_root = str(Path(uri).parent.parent)
        for args in (["inspect", uri], ["diff", good, uri]):
            code, output = _cli(args, capsys, monkeypatch)
            flat = " ".join(output.split())
            assert code != 0 and problem in flat, (args, output)
            assert args[0] != "diff" or code == 2  # 1 would mean "they differ"
            assert "Traceback" not in output and len(output.strip().splitlines()) <= 3
        verify = open_store(store_root).verify()
        assert not verify.ok and problem in verify.damage[0].detail


def test_exec_refuses_with_the_message(
    cases: list[tuple[str, str, str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for uri, problem, _ in cases:
        code = node_main(["--cache", str(tmp_path / "cache"), uri, "--", "true"],
                         prog="envship exec")
        err = capsys.readouterr().err
        assert code != 0 and problem in err, (uri, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_single_file_node_script_agrees(
    cases: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    script = write_script(str(tmp_path))
    prog = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import envship_node, importlib\n"
        "resolve = importlib.import_module('_envship_node.resolve').resolve\n"
        "out = []\n"
        "for uri in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        resolve(uri); out.append(None)\n"
        "    except envship_node.NodeError as exc:\n"
        "        out.append(str(exc))\n"
        "print(json.dumps(out))\n"
    )
    assert Path(script).exists()
    uris = [uri for uri, _, _ in cases]
    good = [_store(tmp_path / f"good{i}", build()) for i, build in enumerate(GOOD)]
    done = subprocess.run([sys.executable, "-I", "-c", prog, json.dumps(uris + good)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(done.stdout)
    assert [_problem(m) for m in got[: len(uris)]] == [p for _, p, _ in cases]
    assert got[len(uris):] == [None] * len(good)


def test_valid_manifests_pass_every_reader(tmp_path: Path) -> None:
    for i, build in enumerate(GOOD):
        uri = _store(tmp_path / str(i), build())
        assert resolve(uri).env_id == formats.env_id_of(build())
        assert Env.open(uri).env_id == formats.env_id_of(build())


def test_presigned_manifests_carry_only_http_urls(tmp_path: Path) -> None:
    m = schema_3()
    for lay in m["layers"]:
        lay["url"] = "https://blobs.example/" + lay["digest"][7:]
    formats.check_manifest(m, "m", presigned=True)
    assert formats.env_id_of(m) == formats.env_id_of(schema_3())  # urls are not hashed
    m["layers"][0]["url"] = "file:///etc/shadow"
    with pytest.raises(ManifestError, match="not an http"):
        formats.check_manifest(m, "m", presigned=True)


@pytest.mark.parametrize("data, needle", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"\x00garbage", "not valid JSON"),
])
def test_hostile_documents_give_one_line(data: bytes, needle: str) -> None:
    message = _message(lambda: formats.parse_document(data, "envs/x.json"))
    assert needle in message
