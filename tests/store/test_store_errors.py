"""Failures: clear messages, bounded retries, install hints, no credentials in any output."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envship.errors import StoreError
from envship.store import open_store
from envship.store.io.errors import is_transient
from envship.store.io.location import Scrubber, parse_storage_options, redact_url
from envship.store.io.retry import RetryPolicy, call
from kits.storekit import FixtureEnv, make_env
from kits.support import AWS_ENV, start_moto_server

ENVSHIP = str(Path(sys.executable).parent / "envship")


def test_redact_url_strips_userinfo_and_signatures() -> None:
    assert redact_url("webhdfs://bob:s3cr3t@nn:9870/data/store") == "webhdfs://nn:9870/data/store"
    assert redact_url("s3://bucket/envs") == "s3://bucket/envs"
    assert redact_url("/srv/store") == "/srv/store"
    assert redact_url("https://h/x.json?X-Amz-Signature=abc") == "https://h/x.json"


def test_store_url_and_env_uri_never_carry_credentials(tmp_path: Path) -> None:
    store = open_store("webhdfs://bob:hunter2pass@127.0.0.1:1/data/store")
    assert store.url == "webhdfs://127.0.0.1:1/data/store"
    assert "hunter2pass" not in store.env_uri("a" * 64)
    assert "hunter2pass" not in repr(store)
    # fsspec took the user from the URL: the store can be reopened with the same options.
    assert store.storage_options["user"] == "bob"


def test_scrubber_hides_option_values_and_signatures() -> None:
    scrub = Scrubber.for_store(
        "s3://bucket/x", {"key": "AKIAEXAMPLEKEY", "secret": "wJalrXUtnFEMIsecret",
                          "endpoint_url": "http://127.0.0.1:9000"}
    )
    text = scrub("failed with AKIAEXAMPLEKEY/wJalrXUtnFEMIsecret at http://127.0.0.1:9000"
                 " https://h/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA%2Fx")
    assert "AKIAEXAMPLEKEY" not in text and "wJalrXUtnFEMIsecret" not in text
    assert "deadbeef" not in text and "AKIA%2Fx" not in text
    assert "http://127.0.0.1:9000" in text  # not a secret: kept to help debugging


def test_parse_storage_options() -> None:
    assert parse_storage_options(
        ["endpoint_url=http://h:9000", "anon=true", "client_kwargs.region_name=eu-west-1"]
    ) == {"endpoint_url": "http://h:9000", "anon": True,
          "client_kwargs": {"region_name": "eu-west-1"}}
    with pytest.raises(StoreError, match="KEY=VALUE"):
        parse_storage_options(["novalue"])


def test_unknown_protocol_is_clear() -> None:
    with pytest.raises(StoreError, match="unknown protocol 'nosuchfs://'"):
        open_store("nosuchfs://bucket/envs")


def test_missing_s3fs_gives_install_hint(tmp_path: Path) -> None:
    """Run the real CLI in a Python where `import s3fs` fails, as in a venv without it."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""\
        import sys
        class _NoS3fs:
            def find_spec(self, name, path=None, target=None):
                if name == "s3fs" or name.startswith("s3fs."):
                    raise ModuleNotFoundError("No module named 's3fs'", name="s3fs")
                return None
        sys.meta_path.insert(0, _NoS3fs())
        """))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([ENVSHIP, "store", "ls", "s3://bucket/envs"], capture_output=True,
                          text=True, env=env, timeout=60)
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 1, proc.stderr
    assert "`pip install s3fs`" in message and "`pip install envship[s3]`" in message
    assert "Traceback" not in message


def test_transient_classification() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    transient = [
        ConnectionResetError(), ConnectionRefusedError(), TimeoutError(),
        OSError(errno.EBUSY, "SlowDown"), EndpointConnectionError(endpoint_url="http://h"),
        client_error("SlowDown", 503), client_error("InternalError", 500),
        client_error("Throttling", 400),
    ]
    fatal = [
        PermissionError("denied"), FileNotFoundError("NoSuchBucket"),
        client_error("AccessDenied", 403), client_error("InvalidArgument", 400), ValueError("x"),
    ]
    wrapped = OSError(errno.EIO, "wrapped")
    wrapped.__cause__ = client_error("ServiceUnavailable", 503)
    transient.append(wrapped)
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in fatal] == [False] * len(fatal)

    # refused / unknown host: not worth waiting for, however deep in the cause chain
    import socket

    from envship.store.io.errors import is_unreachable

    refused = EndpointConnectionError(endpoint_url="http://h")
    refused.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    no_host = OSError("wrapped")
    no_host.__context__ = socket.gaierror(-2, "Name or service not known")
    assert is_unreachable(refused) == "connection refused"
    assert is_unreachable(no_host) == "host not found"
    assert is_unreachable(TimeoutError()) is None
    assert is_unreachable(client_error("SlowDown", 503)) is None


def test_retry_backs_off_then_succeeds_and_respects_the_deadline(tmp_path: Path) -> None:
    loc = open_store(tmp_path).location
    attempts: list[float] = []

    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert call(flaky, "test", loc, RetryPolicy(total=10, initial=0.05)) == "ok"
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.02 and attempts[2] - attempts[1] >= 0.04  # backoff

    def slow() -> None:
        attempts.append(time.monotonic())
        raise TimeoutError("timed out")

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        call(slow, "test", loc, RetryPolicy(total=0.6, initial=0.05))
    assert 0.5 <= time.monotonic() - start < 2.0

    def down() -> None:
        raise ConnectionRefusedError("refused")

    start = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        call(down, "test", loc, RetryPolicy(total=30))
    assert time.monotonic() - start < 0.1  # nothing listens: not worth waiting for

    def denied() -> None:
        raise PermissionError("nope")

    start = time.monotonic()
    with pytest.raises(PermissionError):
        call(denied, "test", loc, RetryPolicy(total=30))
    assert time.monotonic() - start < 0.1  # never retried


@pytest.mark.s3
def test_unreachable_store_fails_fast_with_a_clear_error(
    moto: object, fixture_env: FixtureEnv, tmp_path: Path
) -> None:
    server = start_moto_server()
    opts = {"endpoint_url": server.endpoint}
    store = open_store("s3://gone/envs", opts)
    store.location.fs.mkdir("gone")
    store.publish(fixture_env.manifest, fixture_env.blobs)
    server.stop()  # the store becomes unreachable (connection refused)

    other = make_env(tmp_path / "other", code="V = 2\n")
    start = time.monotonic()
    with pytest.raises(StoreError, match="unreachable") as info:
        open_store("s3://gone/envs", opts, retry_timeout=2).publish(other.manifest, other.blobs)
    elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed  # connection refused: no backoff
    assert "s3://gone/envs" in str(info.value)

    env = {**os.environ, "ENVSHIP_STORE_RETRY_TIMEOUT": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [ENVSHIP, "store", "ls", "s3://gone/envs", "-s", f"endpoint_url={server.endpoint}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 1 and "unreachable" in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 40


@pytest.mark.s3
def test_auth_and_missing_bucket_fail_at_once(moto: object, fixture_env: FixtureEnv,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # moto checks credentials
    server = start_moto_server()
    monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
    try:
        secret = "TopSecretValue123"
        store = open_store("s3://bucket/envs", {"endpoint_url": server.endpoint,
                                                "key": "AKIAUNKNOWN1", "secret": secret})
        start = time.monotonic()
        with pytest.raises(StoreError, match="access denied") as info:
            store.publish(fixture_env.manifest, fixture_env.blobs)
        assert time.monotonic() - start < 5
        assert secret not in str(info.value) and "AKIAUNKNOWN1" not in str(info.value)
        assert AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    finally:
        server.stop()


@pytest.mark.s3
def test_missing_bucket_is_clear(moto: object, fixture_env: FixtureEnv) -> None:
    from kits.support import MotoServer

    assert isinstance(moto, MotoServer)
    store = open_store("s3://no-such-bucket/envs", moto.storage_options())
    start = time.monotonic()
    with pytest.raises(StoreError, match="bucket") as info:
        store.publish(fixture_env.manifest, fixture_env.blobs)
    assert "s3://no-such-bucket/envs" in str(info.value)
    assert time.monotonic() - start < 5
