"""Env.run / Env.map: functions pickled by a client run inside the shipped env."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import cloudpickle
import pytest

import envship
from envship.errors import RemoteError
from envship.node import prepare
from envship.packing.manifest import LayerRef, Manifest, PythonInfo
from envship.remote import RUNNER, build_payload, check_compatible
from kits.remotekit import ShippedClient
from kits.support import SampleEnv

pytestmark = pytest.mark.timeout(600)

PRELUDE = """\
import json, os, sys, warnings, logging
logging.basicConfig(level=logging.WARNING)
import envship
env = envship.Env.open(sys.argv[1])
"""


def _script(tmp_path: Path, body: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body))
    return path


def _last_json(stdout: str) -> object:
    return json.loads(stdout.strip().splitlines()[-1])


def test_function_from_main_runs_inside_the_env(
    shipped_client: ShippedClient, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        """
        def where(x):
            import sys, os
            return {"prefix": sys.prefix, "env_id": os.environ.get("ENVSHIP_ENV_ID"), "x": x * 3}

        r = env.run(where, 14)
        print(json.dumps({"r": r, "id": env.env_id}))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    assert out["r"]["x"] == 42
    assert out["r"]["env_id"] == out["id"]
    cache = shipped_client.environ["ENVSHIP_CACHE"]
    assert out["r"]["prefix"].startswith(cache), "the call did not run in the node cache's view"


def test_local_helper_module_is_pickled_by_value(
    shipped_client: ShippedClient, tmp_path: Path
) -> None:
    (tmp_path / "helpers.py").write_text("def triple(x):\n    return 3 * x\n")
    script = _script(
        tmp_path,
        """
        import helpers

        def job(x):
            return helpers.triple(x) + 1

        print(json.dumps(env.map(job, range(6), processes=2)))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    assert _last_json(proc.stdout) == [1, 4, 7, 10, 13, 16]
    assert "helpers" in proc.stderr and "by value" in proc.stderr


def test_local_code_reached_indirectly_or_through_arguments_travels_too(
    shipped_client: ShippedClient, tmp_path: Path
) -> None:
    """A __main__ function calling another, a lambda or comprehension inside the function, an
    argument of a local class: each needs helpers.py on the other side. A keyword the function
    takes is the function's, whatever its name."""
    (tmp_path / "helpers.py").write_text(
        "class Thing:\n    def __init__(self, v):\n        self.v = v\n\n"
        "def double(x):\n    return 2 * x\n")
    script = _script(
        tmp_path,
        """
        import helpers

        def via(x):
            return helpers.double(x)

        def indirect(x):
            return via(x)

        def nested(xs):
            f = lambda v: helpers.double(v)
            return [f(v) for v in xs]

        def value_of(thing):
            return thing.v

        def own(cache_dir=None):
            return cache_dir

        def env_only():  # an object of a module this client does not have
            import types
            m = types.ModuleType("remoteonly")
            exec("class R:\\n    pass", m.__dict__)
            sys.modules["remoteonly"] = m
            return m.R()

        try:
            env.run(env_only)
            said = None
        except envship.errors.RemoteError as exc:
            said = str(exc)
        print(json.dumps([env.run(indirect, 3), env.run(nested, [1, 2]),
                          env.run(value_of, helpers.Thing(9)),
                          env.run(own, cache_dir="mine"), os.path.exists("mine"), said]))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    *values, said = _last_json(proc.stdout)  # type: ignore[misc]
    assert values == [6, [2, 4], 9, "mine", False]
    assert "result could not be unpickled here" in said and "remoteonly" in said


def test_editable_package_comes_from_the_code_layer(
    shipped_client: ShippedClient, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        """
        import mylib, mylib.extra
        from envship.remote import local_modules

        def job(x):
            import mylib.extra
            return [mylib.extra.double(x), mylib.__file__]

        print(json.dumps({"local": local_modules(job), "r": env.run(job, 21)}))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    assert out["local"] == []
    value, where = out["r"]
    assert value == 42
    assert where.startswith(shipped_client.environ["ENVSHIP_CACHE"])
    assert str(shipped_client.project) not in where
    # a script folder of the editable project is not part of its package: sent by value
    scripts = shipped_client.project / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "tools.py").write_text("def triple(x):\n    return 3 * x\n")
    job = _script(scripts, "import tools\nprint(json.dumps(env.run(tools.triple, 5)))\n",
                  name="run_tools.py")
    try:
        proc = shipped_client.script(job, shipped_client.env_uri)
    finally:
        shutil.rmtree(scripts)  # the project is the session's: leave it as it was
    assert proc.returncode == 0, proc.stderr
    assert _last_json(proc.stdout) == 15 and "tools" in proc.stderr


def test_lambda_closure_over_a_dataframe(shipped_client: ShippedClient, tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import pandas as pd
        df = pd.DataFrame({"a": [1, 2, 3], "b": [10.0, 20.0, 30.0]})
        print(json.dumps(env.run(lambda k: float((df["a"] * df["b"]).sum() * k), 2)))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    assert _last_json(proc.stdout) == 280.0


def test_remote_exception_keeps_type_and_traceback(
    shipped_client: ShippedClient, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        """
        def boom(x):
            raise KeyError(f"missing {x}")

        try:
            env.run(boom, "k1")
        except KeyError as exc:
            print(json.dumps({"type": type(exc).__name__, "args": list(exc.args),
                              "remote": str(exc.__cause__)}))
        """,
    )
    proc = shipped_client.script(script, shipped_client.env_uri)
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    assert out["type"] == "KeyError" and out["args"] == ["missing k1"]
    assert "in boom" in out["remote"] and "Traceback" in out["remote"]


def test_interpreter_mismatch_is_refused_before_pickling() -> None:
    manifest = Manifest(
        PythonInfo("cpython", "3.9.18", "cp39", "linux_x86_64"),
        (LayerRef("deps", "sha256:" + "0" * 64, 1, 1),),
    )
    with pytest.raises(RemoteError, match=r"Python 3\.9"):
        check_compatible(manifest)
    # and before anything is fetched: this env URI names nothing that exists
    from envship.remote import run

    with pytest.raises(RemoteError, match=r"Python 3\.9"):
        run(f"/nowhere/envs/{'0' * 64}.json", manifest, len, ("abc",))


def test_env_without_cloudpickle_gets_the_clients_copy(
    sample_env: SampleEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample env has numpy but no cloudpickle: the payload carries this client's copy."""
    monkeypatch.setenv("ENVSHIP_CACHE", str(tmp_path / "cache"))
    env = envship.ship(tmp_path / "store", python=sample_env.python)
    assert not any(d.name == "cloudpickle" for d in env.manifest.distributions)

    def job(n: int) -> list[object]:
        import numpy

        return [int(numpy.arange(n).sum()), numpy.__file__]

    total, numpy_file = env.run(job, 10)
    assert total == 45
    assert numpy_file.startswith(str(tmp_path / "cache"))
    assert env.map(abs, [-1, -2, 3], processes=2) == [1, 2, 3]


def test_self_contained_payload_runs_without_local_copies(
    sample_env: SampleEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payload built for another machine embeds cloudpickle: the runner needs nothing else."""
    monkeypatch.setenv("ENVSHIP_CACHE", str(tmp_path / "cache"))
    env = envship.ship(tmp_path / "store", python=sample_env.python)
    payload = build_payload(env.manifest, divmod, ((17, 5), {}), "call")
    assert b"cloudpickle/cloudpickle.py" in payload.data
    view = prepare(env.uri)
    out = tmp_path / "result"
    proc = subprocess.run(
        [view.python, str(RUNNER), str(out)], input=payload.data, env=view.environ(), check=False
    )
    assert proc.returncode == 0
    assert cloudpickle.loads(out.read_bytes()) == ("ok", (3, 2))
