"""cluster-pack's examples/interactive-mode/README.md as one script: a function run in a
YARN container (`build_with_func`).

Changed for this machine (identical in both files of the pair): the env goes to a local
directory (ENV_STORE) instead of HDFS; with NO_YARN set (there is no YARN here) the spec's
container is run by no_yarn.py, which lays out its files as YARN's localizer would.
"""

import os

import cluster_pack
import numpy as np
import skein
from cluster_pack.skein import skein_config_builder


def compute_intersection():
    a = np.random.random_integers(0, 100, 100)
    b = np.random.random_integers(0, 100, 100)
    print("Computed intersection of two arrays:")
    print(np.intersect1d(a, b))


if __name__ == "__main__":
    package_path, _ = cluster_pack.upload_env(
        package_path=os.path.join(os.environ["ENV_STORE"], "myenv.pex")
    )

    skein_config = skein_config_builder.build_with_func(
        func=compute_intersection,
        package_path=package_path
    )

    service = skein.Service(
        resources=skein.model.Resources("1 GiB", 1),
        files=skein_config.files,
        script=skein_config.script
    )
    spec = skein.ApplicationSpec(services={"service": service})
    if os.environ.get("NO_YARN"):
        import no_yarn

        raise SystemExit(no_yarn.run(spec))

    with skein.Client() as client:
        app_id = client.submit(spec)
