"""cluster-pack's examples/skein-project/skein_project/client.py: run the module
skein_project.worker of an editable project in a YARN container through skein.

Changed for this machine (identical in both files of the pair): the env goes to a local
directory (ENV_STORE) instead of HDFS; with NO_YARN set (there is no YARN here) the spec's
container is run by no_yarn.py, which lays out its files as YARN's localizer would.
"""

import logging
import os

import skein

import envship
import envship.yarn

if __name__ == "__main__":
    logging.basicConfig(level="INFO")

    env = envship.ship(os.environ["ENV_STORE"])

    spec = envship.yarn.application_spec(
        env, ["python", "-m", "skein_project.worker"], memory="1 GiB", vcores=1
    )
    if os.environ.get("NO_YARN"):
        import no_yarn

        raise SystemExit(no_yarn.run(spec))

    with skein.Client() as client:
        app_id = envship.yarn.submit(spec, client=client)

        envship.yarn.wait_for_finished(app_id, client=client)
        logs = envship.yarn.get_application_logs(app_id, client=client, wait_for_nb_logs=2)
        if logs:
            for key, value in logs.items():
                print(f"skein logs:{key} {value}")
