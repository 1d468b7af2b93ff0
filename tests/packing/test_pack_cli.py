"""`envship pack / inspect / diff` through the real command line (in this process:
kits/clikit.py), good and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from envship.packing.pipeline import PackResult
from kits.clikit import envship
from kits.support import SampleEnv, make_venv


def assert_fails(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 1) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    err = " ".join(proc.stderr.split())
    assert err.startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in err, proc.stderr


def no_temp_files(home: Path) -> bool:
    return not list(home.rglob(".tmp-*")) if home.exists() else True


@pytest.fixture(scope="module")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("small-template") / "venv"
    make_venv(venv)
    return venv


@pytest.fixture
def small_venv(small_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a venv with only pip / setuptools / wheel; tests may break it.

    A venv works from a copy (its interpreter finds pyvenv.cfg next to itself); only the
    shebangs of its bin/ scripts still name the template, which packing does not run.
    """
    shutil.copytree(small_template, tmp_path / "small", symlinks=True)
    return tmp_path / "small"


def _site(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def test_pack_table_inspect_and_diff(
    sample_env: SampleEnv, sample_pack: PackResult, tmp_path: Path
) -> None:
    proc = envship("pack", "--python", str(sample_env.venv), "-o", "packed", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert sample_pack.env_id in out
    assert "code" in out and "dist" in out and ("cached" in out or "built" in out)
    assert "numpy==" in out and "mylib==0.1.0" in out
    manifest = tmp_path / "packed" / "envs" / f"{sample_pack.env_id}.json"
    assert manifest.is_file()

    proc = envship("inspect", str(tmp_path / "packed"))
    assert proc.returncode == 0, proc.stderr
    assert "mylib" in proc.stdout and "numpy" in proc.stdout and "editable" in proc.stdout
    data = json.loads(envship("inspect", str(manifest), "--json").stdout)
    assert data["env_id"] == sample_pack.env_id

    same = json.loads(envship("diff", str(manifest), str(tmp_path / "packed"), "--json").stdout)
    assert same["same"] is True
    assert "identical" in envship("diff", str(manifest), str(manifest)).stdout


def test_default_output_dir_and_json(small_venv: Path, tmp_path: Path) -> None:
    proc = envship("pack", "--python", str(small_venv), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["output"] == str(tmp_path / "envship-pack")
    assert Path(data["manifest"]).is_file()
    assert {lay["kind"] for lay in data["layers"]} <= {"code", "dist"}
    assert {"pip", "setuptools"} <= {d.partition("==")[0]
                                     for lay in data["layers"] for d in lay["dists"]}


def test_diff_shows_added_package_and_left_out(sample_env: SampleEnv, tmp_path: Path) -> None:
    a = envship("pack", "-p", str(sample_env.venv), "-o", "a", "--json", cwd=tmp_path)
    b = envship("pack", "-p", str(sample_env.venv), "-o", "b", "-x", "numpy", "--json",
                cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    d = json.loads(envship("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json").stdout)
    assert d["removed"] == [{"name": "numpy", "version": d["removed"][0]["version"]}]
    assert d["layers"]["dist numpy"] == "removed" and d["layers"]["code mylib"] == "same"
    assert {v for k, v in d["layers"].items() if k != "dist numpy"} == {"same"}
    assert d["blobs_only_in_b"] == [] and d["fetch_bytes"] == 0
    numpy = d["blobs_only_in_a"]
    assert [b["layer"] for b in numpy] == ["dist numpy"] and numpy[0]["size"] > 1_000_000
    shown = envship("inspect", str(tmp_path / "b")).stdout
    assert "left out" in shown and "excluded by --exclude" in shown


def test_python_missing(tmp_path: Path, isolated_home: Path) -> None:
    proc = envship("pack", "--python", str(tmp_path / "nope"), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "does not exist")
    assert not (tmp_path / "out").exists()


def test_not_a_venv(tmp_path: Path, isolated_home: Path) -> None:
    (tmp_path / "plain").mkdir()
    proc = envship("pack", "--python", str(tmp_path / "plain"), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "is not a virtual environment")
    assert not (tmp_path / "out").exists()


def test_python_not_runnable(tmp_path: Path, isolated_home: Path) -> None:
    fake = tmp_path / "fakepy" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho broken interpreter >&2\nexit 3\n")
    fake.chmod(0o755)
    proc = envship("pack", "--python", str(tmp_path / "fakepy"), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "failed to describe its environment", "exit 3", "broken interpreter")
    assert not (tmp_path / "out").exists()
    fake.chmod(0o644)
    proc = envship("pack", "--python", str(fake), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "cannot run python")


def test_missing_record(small_venv: Path, tmp_path: Path, isolated_home: Path) -> None:
    (next(_site(small_venv).glob("wheel-*.dist-info")) / "RECORD").unlink()
    proc = envship("pack", "--python", str(small_venv), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "broken distribution metadata", "wheel", "has no RECORD", "reinstall")
    assert not (tmp_path / "out").exists()


def test_file_vanished(small_venv: Path, tmp_path: Path, isolated_home: Path) -> None:
    (_site(small_venv) / "wheel" / "__init__.py").unlink()
    proc = envship("pack", "--python", str(small_venv), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "wheel/__init__.py", "vanished")
    assert not (tmp_path / "out").exists()
    assert no_temp_files(isolated_home)


def test_file_unreadable(small_venv: Path, tmp_path: Path, isolated_home: Path) -> None:
    target = _site(small_venv) / "wheel" / "__init__.py"
    target.unlink()
    target.mkdir()  # reading a directory fails even for root, unlike chmod 000
    proc = envship("pack", "--python", str(small_venv), "-o", "out", cwd=tmp_path)
    assert_fails(proc, "cannot read", "wheel/__init__.py")
    assert not (tmp_path / "out").exists()
    assert no_temp_files(isolated_home)


def test_unwritable_output(small_venv: Path, tmp_path: Path, isolated_home: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    proc = envship("pack", "--python", str(small_venv), "-o", str(blocker))
    assert_fails(proc, "is not a directory")
    proc = envship("pack", "--python", str(small_venv), "-o", str(blocker / "out"))
    assert_fails(proc, f"{blocker} is not a directory")
    assert blocker.read_text() == "not a directory\n"
    if os.access("/sys", os.W_OK):  # root: writable on paper, refused by the kernel
        proc = envship("pack", "--python", str(small_venv), "-o", "/sys/envship-out")
        assert_fails(proc, "cannot write pack output to /sys/envship-out")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert_fails(envship("pack", "-p", str(small_venv), "-o", str(ro / "out")),
                     "not writable")
        assert not (ro / "out").exists()


def test_failed_pack_keeps_existing_output(
    small_venv: Path, tmp_path: Path, isolated_home: Path
) -> None:
    out = tmp_path / "out"
    assert envship("pack", "-p", str(small_venv), "-o", str(out)).returncode == 0
    before = sorted(p.name for p in out.rglob("*"))
    (_site(small_venv) / "wheel" / "__init__.py").unlink()
    assert_fails(envship("pack", "-p", str(small_venv), "-o", str(out)), "vanished")
    assert sorted(p.name for p in out.rglob("*")) == before


def test_damaged_manifest(sample_pack: PackResult, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "envship.manifest/1", "python": ')
    assert_fails(envship("inspect", str(bad)), "not valid JSON")
    assert sample_pack.output is not None
    good = sample_pack.output / "envs" / f"{sample_pack.env_id}.json"
    tampered = tmp_path / "envs" / good.name
    tampered.parent.mkdir()
    tampered.write_text(good.read_text().replace('"numpy"', '"numpy2"'))
    assert_fails(envship("inspect", str(tampered)), "content hashes to env id")
    # diff exits as diff(1) does: 1 means "they differ", trouble is 2
    assert_fails(envship("diff", str(good), str(tmp_path / "missing.json")), "not found",
                 code=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_fails(envship("inspect", str(empty)), "no manifest")
    shutil.rmtree(empty)


def test_inspect_and_diff_over_http(sample_pack: PackResult) -> None:
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # not into the CLI's stderr
            pass

    assert sample_pack.output is not None
    handler = functools.partial(Quiet, directory=str(sample_pack.output))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/envs/{sample_pack.env_id}.json"
        proc = envship("inspect", url, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["env_id"] == sample_pack.env_id
        local = str(sample_pack.output)
        assert json.loads(envship("diff", url, local, "--json").stdout)["same"] is True
        missing = url.replace(sample_pack.env_id, "0" * 64)
        assert_fails(envship("inspect", missing), "not found in store")
    finally:
        server.shutdown()
        server.server_close()


def test_output_parents_are_created(small_venv: Path, tmp_path: Path, isolated_home: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    proc = envship("pack", "--python", str(small_venv), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifests = sorted((out / "envs").glob("*.json"))
    assert len(manifests) == 1  # a local store: the manifest, no provenance file
    blobs = sorted((out / "blobs" / "sha256").glob("*.tar.gz"))
    assert blobs and all(not p.name.startswith(".") for p in blobs)
