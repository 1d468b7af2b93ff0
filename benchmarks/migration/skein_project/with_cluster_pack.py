"""cluster-pack's examples/skein-project/skein_project/client.py: run the module
skein_project.worker of an editable project in a YARN container through skein.

Changed for this machine (identical in both files of the pair): the env goes to a local
directory (ENV_STORE) instead of HDFS; with NO_YARN set (there is no YARN here) the spec's
container is run by no_yarn.py, which lays out its files as YARN's localizer would.
"""

import logging
import os
import tempfile

import cluster_pack
import skein
from cluster_pack import yarn_launcher
from cluster_pack.skein import skein_config_builder

if __name__ == "__main__":
    logging.basicConfig(level="INFO")

    package_path, _ = cluster_pack.upload_env(
        package_path=os.path.join(os.environ["ENV_STORE"], "myenv.pex")
    )

    with tempfile.TemporaryDirectory() as tmp_dir:
        skein_config = skein_config_builder.build(
            module_name="skein_project.worker",
            package_path=package_path,
            tmp_dir=tmp_dir,
        )

        service = skein.Service(
            resources=skein.model.Resources("1 GiB", 1),
            files=skein_config.files,
            script=skein_config.script,
        )
        spec = skein.ApplicationSpec(services={"service": service})
        if os.environ.get("NO_YARN"):
            import no_yarn

            raise SystemExit(no_yarn.run(spec))

        with skein.Client() as client:
            app_id = client.submit(spec)

            yarn_launcher.wait_for_finished(client, app_id)
            logs = yarn_launcher.get_application_logs(client, app_id, 2)
            if logs:
                for key, value in logs.items():
                    print(f"skein logs:{key} {value}")
