"""TensorFlow: a 2-worker MultiWorkerMirroredStrategy job, each worker started by `envship exec`.

Each worker is a "node" with its own node cache and its own TF_CONFIG (from
``envship.engines.tensorflow.tf_config``); both fetch the shipped env (tensorflow-cpu from the
index), meet over gRPC on 127.0.0.1 and train a small Keras model with a custom step under
``strategy.run`` (Keras 3's ``fit`` does not run under this strategy on TF 2.21). Each worker
trains on its own data shard with its own random seed; the test checks that both end with the
same weights, that those are what full-batch gradient descent over both shards gives, and
that each worker ran from its own cache.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envship.engines.exec import launch
from envship.engines.tensorflow import tf_config
from envship.errors import EngineError
from kits.enginekit import Shipped, child_environ, free_port, run_workers, ship_venv
from kits.support import make_venv

TENSORFLOW = "tensorflow-cpu==2.21.0"  # ~270 MB wheel, ~1.5 GB installed with its deps
STEPS, LR = 4, 0.1

_SCRIPT = """
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    import keras

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    keras.utils.set_random_seed(100 + index)  # different seeds: worker 0's initial weights win
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD({lr})
    initial = [w.tolist() for w in model.get_weights()]

    rng = np.random.default_rng(index)  # each worker its own shard of 16 samples
    x = rng.normal(size=(16, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [3.0], [0.5]], "float32") + np.float32(0.25)

    @tf.function
    def train_step(x, y):
        def step(x, y):
            with tf.GradientTape() as tape:
                # per-replica mean / replicas: the all-reduced sum is the global mean
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2) / replicas
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces
            return loss
        return strategy.reduce("SUM", strategy.run(step, (x, y)), axis=None)

    losses = [float(train_step(x, y)) for _ in range({steps})]
    print(json.dumps({{
        "index": index, "replicas": replicas, "losses": losses,
        "initial": initial, "final": [w.tolist() for w in model.get_weights()],
        "x": x.tolist(), "y": y.tolist(),
        "env": os.environ["ENVSHIP_ENV_ID"], "prefix": sys.prefix,
    }}), flush=True)
"""


def test_tf_config() -> None:
    assert json.loads(tf_config(["127.0.0.1:2222", "h2:2223"], 1)) == {
        "cluster": {"worker": ["127.0.0.1:2222", "h2:2223"]},
        "task": {"type": "worker", "index": 1},
    }
    assert json.loads(tf_config(("node1", "node2:3000", "[::1]"), 0, port=2222))["cluster"] == {
        "worker": ["node1:2222", "node2:3000", "[::1]:2222"]
    }
    compact = '{"cluster":{"worker":["h:1"]},"task":{"type":"worker","index":0}}'
    assert tf_config(["h:1"], 0) == compact
    for workers, index, match in (
        ([], 0, "no TensorFlow workers"),
        ("h1:1,h2:2", 0, "must be a list"),
        (["h1"], 0, "has no port"),
        (["h1:1", "h1:1"], 0, "appears twice"),
        (["h1:1", "h2:1"], 2, "outside the 2 workers"),
        (["h1:1"], -1, "outside"),
        (["h1:x"], 0, "not a number"),
        (["h1:70000"], 0, "not a TCP port"),
        (["::1:2222"], 0, "IPv6"),
        ([":2222"], 0, "no host"),
        (["h 1:2"], 0, "not a host name"),
        ([None], 0, "not a 'host:port' string"),
    ):
        with pytest.raises(EngineError, match=match):
            tf_config(workers, index)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="must be an int"):
        tf_config(["h:1"], True)
    with pytest.raises(EngineError, match="not a TCP port"):
        tf_config(["h"], 0, port=0)


@pytest.fixture(scope="session")
def tf_env(engines_base: Path) -> Shipped:
    base = engines_base / "tensorflow"
    start = time.monotonic()
    py = make_venv(base / "env", [TENSORFLOW])  # uv: no .pyc compiled (layers leave them out)
    installed = time.monotonic()
    shipped = ship_venv(py, base / "store")
    print(
        f"tensorflow env: installed in {installed - start:.1f} s, "
        f"shipped in {time.monotonic() - installed:.1f} s"
    )
    return shipped


def _reference(initial: list[Any], shards: list[dict[str, Any]]) -> list[np.ndarray]:
    """Full-batch gradient descent with the mean squared error over all shards, in float64."""
    w, b = np.array(initial[0], float), np.array(initial[1], float)
    x = np.concatenate([np.array(s["x"], float) for s in shards])
    y = np.concatenate([np.array(s["y"], float) for s in shards])
    for _ in range(STEPS):
        err = x @ w + b - y
        w, b = w - LR * 2 * x.T @ err / len(x), b - LR * 2 * err.mean(axis=0)
    return [w, b]


@pytest.mark.tensorflow
@pytest.mark.timeout(900)
def test_two_workers_train_in_sync(tf_env: Shipped, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(lr=LR, steps=STEPS)))
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    assert workers[0] != workers[1]
    envship = str(Path(sys.executable).parent / "envship")
    workers_run: list[tuple[list[str], dict[str, str]]] = []
    start = time.monotonic()
    for index in range(2):
        how = launch(tf_env.uri, ["python", str(script)], envship_bin=envship)
        assert how.argv[:3] == [envship, "exec", "--"] and tf_env.env_id not in how.argv
        environ = how.environ(
            tmp_path / f"node{index}" / "cache",
            {
                "TF_CONFIG": tf_config(workers, index),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_NUM_INTRAOP_THREADS": "1",
                "TF_NUM_INTEROP_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "no_grpc_proxy": "127.0.0.1,localhost",  # gRPC never goes through a proxy
            },
            base=child_environ(),
        )
        workers_run.append((how.argv, environ))
    outputs = run_workers(workers_run, tmp_path, timeout=420)
    print(f"2 workers fetched the env and trained in {time.monotonic() - start:.1f} s")
    assert [o["index"] for o in outputs] == [0, 1]
    for index, out in enumerate(outputs):
        assert out["replicas"] == 2
        assert out["env"] == tf_env.env_id
        # Each "node" ran from its own cache: the env was fetched once per node.
        assert out["prefix"] == str(tmp_path / f"node{index}" / "cache" / "envs" / tf_env.env_id)
    first, second = outputs
    assert first["x"] != second["x"], "each worker trains on its own shard"
    # Worker 0's initial weights were broadcast; both end with the same trained weights...
    assert first["initial"] == second["initial"]
    assert first["final"] == second["final"]
    assert first["losses"] == second["losses"]
    assert first["final"] != first["initial"]
    assert first["losses"][-1] < first["losses"][0]
    # ... which are full-batch gradient descent over both shards: the gradients were all-reduced.
    for got, want in zip(first["final"], _reference(first["initial"], outputs), strict=True):
        np.testing.assert_allclose(np.array(got), want, rtol=1e-4, atol=1e-5)
