"""envship.node: stdlib only, Python 3.9 syntax, works as one file in a bare venv."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import envship.node
from envship.node.script import MODULES, script_text
from kits.mergedkit import Envs
from kits.nodekit import ENVSHIP, Store, node_env
from kits.support import HOST_PYTHON, run, uv_bin

SRC = Path(envship.__file__).resolve().parent.parent
NODE_DIR = Path(envship.node.__file__).resolve().parent

# Installed before anything of ours is imported: any non-stdlib top-level import is recorded
# (to a file, since the process ends in exec) and refused.
HOOK = textwrap.dedent(
    """\
    import sys
    ALLOWED = set(sys.stdlib_module_names) | {"envship", "_envship_node", "__main__"}
    ALLOWED.add("org")  # copy.py's own probe for Jython's org.python.core
    LOG = sys.argv.pop(1)
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ALLOWED:
                return None
            with open(LOG, "a") as f:
                f.write(name + "\\n")
            raise ImportError("blocked non-stdlib import: " + name)
    sys.meta_path.insert(0, Block())
    """
)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing installed: no envship, no fsspec, no pip."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    run([uv_bin(), "venv", "-q", "-p", HOST_PYTHON, str(venv)])
    py = venv / "bin" / "python"
    probe = "import importlib.util as u; print(u.find_spec('envship'))"
    assert run([str(py), "-c", probe]).stdout.strip() == "None"
    return py


def test_modules_parse_as_python_39() -> None:
    for path in sorted(NODE_DIR.glob("*.py")):
        source = path.read_text()
        tree = ast.parse(source, str(path), feature_version=(3, 9))  # rejects `match` etc.
        assert not any(isinstance(n, ast.Match) for n in ast.walk(tree))
        for newer in ("strict=", "kw_only", "slots=True", "TypeAlias", "ParamSpec"):
            assert newer not in source, f"{path.name}: {newer}"
    assert set(MODULES) == {p.stem for p in NODE_DIR.glob("*.py")} - {"script"}


def test_package_in_bare_venv_with_import_blocker(
    bare_python: Path, small_store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "blocked.log"
    cache = tmp_path / "cache"
    prog = HOOK + textwrap.dedent(
        f"""\
        sys.path.insert(0, {str(SRC)!r})
        from envship.node import prepare
        view = prepare({str(small_store.uri)!r}, cache_dir={str(cache)!r})
        from envship.node.__main__ import main
        sys.exit(main(["--cache", {str(cache)!r}, {str(small_store.uri)!r}, "--",
                       "python", "-c", "import tinylib, pthmod; print(pthmod.FLAG)"]))
        """
    )
    proc = subprocess.run(
        [str(bare_python), "-c", prog, str(log)], capture_output=True, text=True, env=node_env()
    )
    assert not log.exists(), f"non-stdlib imports attempted: {log.read_text()}"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pth ok"


def test_fsspec_urls_without_fsspec_say_what_to_do(bare_python: Path, tmp_path: Path) -> None:
    prog = textwrap.dedent(
        f"""\
        import sys
        sys.path.insert(0, {str(SRC)!r})
        from envship.node import NodeError, prepare
        try:
            prepare("s3://bucket/store/envs/" + "a" * 64 + ".json", cache_dir={str(tmp_path)!r})
        except NodeError as exc:
            print(exc)
        """
    )
    out = run([str(bare_python), "-c", prog]).stdout
    assert "needs fsspec" in out and "presigned" in out


def test_single_file_form_in_bare_venv(
    bare_python: Path, numpy_store: Store, tmp_path: Path
) -> None:
    out = subprocess.run([ENVSHIP, "node-script"], capture_output=True, check=True).stdout
    assert out.decode() == script_text() == script_text()  # deterministic
    script = tmp_path / "envship_node.py"
    script.write_bytes(out)
    log = tmp_path / "blocked.log"
    cache = tmp_path / "cache"
    cmd = ["python", "-c", "import numpy, tinylib; print(numpy.__version__ > '1')"]
    prog = HOOK + textwrap.dedent(
        f"""\
        import runpy
        sys.argv = [{str(script)!r}] + sys.argv[1:]
        runpy.run_path({str(script)!r}, run_name="__main__")
        """
    )
    proc = subprocess.run(
        [str(bare_python), "-c", prog, str(log), "--cache", str(cache), str(numpy_store.uri),
         "--", *cmd],
        capture_output=True, text=True, env=node_env(),
    )
    assert not log.exists(), f"non-stdlib imports attempted: {log.read_text()}"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    # and plainly, as a user would: python3 envship_node.py ENV_URI -- CMD
    plain = subprocess.run(
        [str(bare_python), str(script), "--cache", str(cache), str(numpy_store.uri), "--",
         "tiny"],
        capture_output=True, text=True, env=node_env(),
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "tiny says hi"
    assert str(sys.executable) != str(bare_python)


def _pythons() -> list[str]:
    """Other CPython versions on this machine (pyenv installs), to run the single file with."""
    found = []
    for mm in ("3.9", "3.10", "3.12", "3.13"):
        for base in (Path.home() / ".pyenv" / "versions").glob(f"{mm}.*"):
            exe = base / "bin" / f"python{mm}"
            if exe.exists():
                found.append(str(exe))
                break
    return found


@pytest.mark.parametrize("other", _pythons() or [pytest.param("", marks=pytest.mark.skip)])
def test_single_file_runs_on_other_pythons(
    other: str, tmp_path: Path, merged_envs: Envs
) -> None:
    from kits.nodekit import (
        blob_from_tree,
        make_manifest,
        make_small_store,
        write_code_tree,
        write_store,
    )

    script = tmp_path / "envship_node.py"
    script.write_text(script_text())
    cache = tmp_path / "cache"
    # the node runtime on that Python, the env on this one (found as python3.X on PATH)
    store = make_small_store(tmp_path / "a")
    host_bin = str(Path(HOST_PYTHON).parent)
    env = node_env(PATH=host_bin + ":" + node_env()["PATH"])
    proc = subprocess.run(
        [other, str(script), "--cache", str(cache), str(store.uri), "--", "python", "-c",
         "import sys, tinylib; print(sys.version_info[:2])"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tuple(sys.version_info[:2]))
    # an env built for that Python, run with it
    version = subprocess.run([other, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    code = blob_from_tree("code", write_code_tree(tmp_path / "b"))
    uri = write_store(tmp_path / "s", make_manifest([code], version=version), [code])
    proc = subprocess.run(
        [other, str(script), "--cache", str(cache), "--python", other, str(uri), "--",
         "python", "-c", "import platform, pthmod; print(platform.python_version(), pthmod.FLAG)"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{version} pth ok"
    # a schema-2 env of this Python, fetched, compiled and merged by the runtime on that one
    uri = str(merged_envs.root / "envs" / f"{merged_envs.a}.json")
    proc = subprocess.run(
        [other, str(script), "--cache", str(cache), uri, "--", "python", "-c",
         "import rpathext, nspkg.b; print(rpathext.value(), nspkg.b.SIBLING)"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42 b-sees-a-data"


def test_single_file_form_runs_a_schema_2_env(
    bare_python: Path, merged_envs: Envs, tmp_path: Path
) -> None:
    """The single file, with only the stdlib importable, fetches the per-distribution blobs,
    compiles the "bytecode": "node" one with the env's interpreter and merges the view."""
    script = tmp_path / "envship_node.py"
    script.write_text(script_text())
    log = tmp_path / "blocked.log"
    cache = tmp_path / "cache"
    uri = str(merged_envs.root / "envs" / f"{merged_envs.a}.json")
    prog = HOOK + textwrap.dedent(
        f"""\
        import runpy
        sys.argv = [{str(script)!r}] + sys.argv[1:]
        runpy.run_path({str(script)!r}, run_name="__main__")
        """
    )
    cmd = ["python", "-c", "import rpathext, nspkg.b, pthmod; print(rpathext.value(), "
           "nspkg.b.SIBLING, pthmod.FLAG)"]
    proc = subprocess.run(
        [str(bare_python), "-c", prog, str(log), "--cache", str(cache), uri, "--", *cmd],
        capture_output=True, text=True, env=node_env(),
    )
    assert not log.exists(), f"non-stdlib imports attempted: {log.read_text()}"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42 b-sees-a-data pth ok"
    tag = sys.implementation.cache_tag
    compiled = (cache / "layers" / merged_envs.blobs["ns-b"].hex / "site-packages" / "nspkg"
                / "b" / "__pycache__" / f"__init__.{tag}.pyc")
    assert compiled.exists()
