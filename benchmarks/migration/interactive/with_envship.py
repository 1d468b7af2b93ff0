"""cluster-pack's examples/interactive-mode/README.md as one script: a function run in a
YARN container (`build_with_func`).

Changed for this machine (identical in both files of the pair): the env goes to a local
directory (ENV_STORE) instead of HDFS; with NO_YARN set (there is no YARN here) the spec's
container is run by no_yarn.py, which lays out its files as YARN's localizer would.
"""

import os

import numpy as np
import skein

import envship
import envship.yarn


def compute_intersection():
    a = np.random.random_integers(0, 100, 100)
    b = np.random.random_integers(0, 100, 100)
    print("Computed intersection of two arrays:")
    print(np.intersect1d(a, b))


if __name__ == "__main__":
    env = envship.ship(os.environ["ENV_STORE"])

    spec = envship.yarn.function_spec(env, compute_intersection, memory="1 GiB", vcores=1)
    if os.environ.get("NO_YARN"):
        import no_yarn

        raise SystemExit(no_yarn.run(spec))

    with skein.Client() as client:
        app_id = envship.yarn.submit(spec, client=client)
