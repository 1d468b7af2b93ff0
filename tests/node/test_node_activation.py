"""Conda activation of a view: activate.d scripts sourced by a real /bin/sh, in name order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envship.node.activation import activate
from envship.node.errors import NodeError


def _view(root: Path, scripts: dict[str, str]) -> str:
    """A directory shaped like a conda view: conda-meta/ and etc/conda/activate.d/*."""
    (root / "conda-meta").mkdir(parents=True)
    folder = root / "etc" / "conda" / "activate.d"
    folder.mkdir(parents=True)
    for name, text in scripts.items():
        (folder / name).write_text(text)
    return str(root)


def test_scripts_are_sourced_in_name_order_and_the_shell_leaves_no_trace(tmp_path: Path) -> None:
    view = _view(tmp_path / "v", {
        "b.sh": 'export B="$A-b"\n',
        "a.sh": 'export A="a:$CONDA_PREFIX"\ncd /\nhead -c 200000 /dev/zero | tr "\\0" x >&2\n',
        "c.txt": "exit 9\n",  # not a .sh: not sourced
    })
    base = {"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": "/elsewhere", "SHLVL": "4"}
    env = activate(view, base)
    assert env["A"] == f"a:{view}" and env["B"] == f"a:{view}-b"
    assert env["CONDA_PREFIX"] == view and env["CONDA_SHLVL"] == "1"
    assert "VIRTUAL_ENV" not in env
    # the shell's own variables are as they were: PWD was not set, `cd` does not leak OLDPWD
    assert env["SHLVL"] == "4" and "PWD" not in env and "OLDPWD" not in env
    assert base == {"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": "/elsewhere", "SHLVL": "4"}


def test_a_failing_script_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    view = _view(tmp_path / "v", {"x.sh": 'echo "cannot find GDAL_DATA" >&2\nfalse\n'})
    with pytest.raises(NodeError) as err:
        activate(view, {"PATH": "/usr/bin:/bin"})
    message = str(err.value)
    assert "\n" not in message
    assert message == (f"the env's activation scripts ({view}/etc/conda/activate.d) failed "
                       "(exit 1): cannot find GDAL_DATA")


def test_no_script_starts_no_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = _view(tmp_path / "v", {"README": "no scripts here\n"})

    def no_spawn(*args: object, **kwargs: object) -> int:
        raise AssertionError("a shell was started")

    monkeypatch.setattr(os, "posix_spawn", no_spawn)
    env = activate(view, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "CONDA_PREFIX": view, "CONDA_DEFAULT_ENV": view,
                   "CONDA_SHLVL": "1"}
