"""A node cache several Unix users share: the ownership rule, `cache warm`, read-only layers.

Real users (created with useradd, removed with userdel -r; needs root, as CI runs) run
`envship exec` and the single-file node script through setpriv.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kits.nodekit import ENVSHIP, Blob, Manifest2, blob_from_tree, make_manifest2, node_env
from kits.support import run, uv_bin

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
    reason="needs root (creates Unix users) and setpriv",
)

MM = "python{}.{}".format(*sys.version_info[:2])
SYSTEM_PYTHON = "/usr/bin/" + MM


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
             *args],
            env=env, capture_output=True, text=True, timeout=120, cwd="/",
        )

    def sh(self, script: str, env: dict[str, str]) -> None:
        proc = self.run(["/bin/sh", "-ec", script], env)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[User, User]]:
    """Alice and Bob, without home directories (as container users often are)."""
    names = [f"es{os.getpid() % 100000}{c}" for c in "ab"]
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name],
                           check=True, capture_output=True)
            made.append(name)
        ents = [pwd.getpwnam(n) for n in names]
        yield User(names[0], ents[0].pw_uid, ents[0].pw_gid), \
            User(names[1], ents[1].pw_uid, ents[1].pw_gid)
    finally:
        for name in made:
            subprocess.run(["userdel", "-r", name], capture_output=True)


@dataclass(frozen=True)
class Tools:
    """What the test users run: envship and a python (with envship importable)."""

    envship: str
    python: str


@pytest.fixture(scope="module")
def tools(users: tuple[User, User]) -> Iterator[Tools]:
    """This checkout's envship, if the test users can read it; else (a checkout they cannot
    reach, e.g. cloned into a 0700 `mktemp -d`) envship installed from it into a venv they
    can read, as a node would have it installed."""
    probe = users[0].run([sys.executable, "-c", f"open({ENVSHIP!r}).close()"],
                         {"PATH": os.defpath})
    if probe.returncode == 0:
        yield Tools(ENVSHIP, sys.executable)
        return
    base = Path(tempfile.mkdtemp(prefix="envship-trust-venv-"))
    base.chmod(0o755)
    try:
        venv = base / "venv"
        run([uv_bin(), "venv", "-q", "-p", sys.executable, str(venv)])
        run([uv_bin(), "pip", "install", "-q", "-p", str(venv / "bin" / "python"),
             str(Path(__file__).resolve().parents[2])])
        yield Tools(str(venv / "bin" / "envship"), str(venv / "bin" / "python"))
    finally:
        shutil.rmtree(base)


def schema3(blobs: list[Blob]) -> Manifest2:
    """A schema-3 manifest: schema 2's fields plus each layer's unpacked bytes."""
    data: dict[str, Any] = make_manifest2(blobs).data
    data["schema"] = "envship.manifest/3"
    by_digest = {b.digest: b for b in blobs}
    for lay in data["layers"]:
        with tarfile.open(fileobj=io.BytesIO(by_digest[lay["digest"]].data), mode="r:gz") as t:
            lay["unpacked"] = sum(m.size for m in t if m.isfile())
    return Manifest2(data)


def code_blob(base: Path, greeting: str) -> Blob:
    site = base / "site-packages"
    (site / "tinylib").mkdir(parents=True)
    (site / "tinylib" / "__init__.py").write_text(f"def main():\n    print({greeting!r})\n")
    (site / "tinylib-0.1.dist-info").mkdir()
    (site / "tinylib-0.1.dist-info" / "METADATA").write_text("Name: tinylib\nVersion: 0.1\n")
    from dataclasses import replace

    return replace(blob_from_tree("code", {"site-packages": site}), dists=("tinylib==0.1",))


@dataclass(frozen=True)
class World:
    base: Path  # world-readable; removed after the test
    uri_a: str
    uri_b: str
    id_a: str
    id_b: str
    hex_a: str
    hex_b: str
    marks: Path  # planted code writes here when it runs
    script: str  # the single-file node runtime
    tools: Tools  # what the test users run

    def env(self, cache: Path) -> dict[str, str]:
        env = node_env(HOME="/nonexistent", ENVSHIP_CACHE=str(cache),
                       TMPDIR=str(self.base / "tmp"))
        if os.access(SYSTEM_PYTHON, os.X_OK):  # one every user can run (root's may be private)
            env["ENVSHIP_PYTHON"] = SYSTEM_PYTHON
        return env


@pytest.fixture
def world(tmp_path: Path, tools: Tools) -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="envship-trust-"))
    base.chmod(0o755)
    try:
        (base / "marks").mkdir(mode=0o1777)
        (base / "marks").chmod(0o1777)
        (base / "tmp").mkdir()
        (base / "tmp").chmod(0o1777)
        store = base / "store"
        (store / "blobs" / "sha256").mkdir(parents=True)
        (store / "envs").mkdir()
        uris, ids, hexes = [], [], []
        for name, greeting in (("a", "hi from A"), ("b", "hi from B")):
            blob = code_blob(tmp_path / name, greeting)
            manifest = schema3([blob])
            (store / "blobs" / "sha256" / f"{blob.hex}.tar.gz").write_bytes(blob.data)
            uri = store / "envs" / f"{manifest.env_id}.json"
            uri.write_bytes(manifest.to_json())
            uris.append(str(uri))
            ids.append(manifest.env_id)
            hexes.append(blob.hex)
        subprocess.run([ENVSHIP, "node-script", "-o", str(base)], check=True,
                       capture_output=True)
        os.chmod(base / "envship_node.py", 0o755)
        yield World(base, uris[0], uris[1], ids[0], ids[1], hexes[0], hexes[1],
                    base / "marks", str(base / "envship_node.py"), tools)
    finally:
        shutil.rmtree(base)


def _exec(world: World, user: User, cache: Path, uri: str, code: str,
          script: bool = False) -> subprocess.CompletedProcess[str]:
    launcher = ([world.tools.python, world.script] if script
                else [world.tools.envship, "exec"])
    return user.run([*launcher, "--cache", str(cache), uri, "--", "python", "-c", code],
                    world.env(cache))


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning:" in line]


RUN = "import tinylib; tinylib.main()"


def test_plants_in_a_shared_cache_are_ignored(world: World, users: tuple[User, User]) -> None:
    alice, bob = users
    cache = world.base / "cache"
    for sub in ("", "layers", "envs", "locks"):  # all world-writable, as an admin may set it
        (cache / sub).mkdir(exist_ok=True)
        (cache / sub).chmod(0o1777)
    first = _exec(world, alice, cache, world.uri_a, RUN)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "hi from A\n"
    site = f"{cache}/envs/{world.id_a}/lib/{MM}/site-packages"
    plant = f"import os; open('{world.marks}/ran-' + str(os.getuid()), 'w')"
    fake = world.base / "tmp" / "alice-layer" / "site-packages" / "tinylib"
    alice.sh(
        # 1. a .pth added to her view of A (she owns it: she can make it writable)
        f"chmod u+w {site}; echo \"{plant}\" > {site}/evil.pth\n"
        # 2. a layer file of A edited (the view's file is the same inode)
        f"f={cache}/layers/{world.hex_a}/site-packages/tinylib/__init__.py\n"
        f"chmod u+w $f; echo \"{plant}\" >> $f\n"
        # 3. envs/<id B>/bin/python planted for an env Bob has not run yet
        f"mkdir -p {cache}/envs/{world.id_b}/bin\n"
        f"printf '#!/bin/sh\\ntouch {world.marks}/python-$(id -u)\\nexec python3 \"$@\"\\n' "
        f"> {cache}/envs/{world.id_b}/bin/python; chmod 755 {cache}/envs/{world.id_b}/bin/python\n"
        # 4. a symlink at layers/<hex of B> to a layer of her own
        f"mkdir -p {fake}; echo \"{plant}\" > {fake}/__init__.py\n"
        f"ln -s {world.base}/tmp/alice-layer {cache}/layers/{world.hex_b}\n"
        # 5. symlinks at lock paths: Bob's process must not create files where she points
        f"rm -f {cache}/locks/env-{world.id_a}.lock\n"
        f"ln -s {world.base}/marks/victim-a {cache}/locks/env-{world.id_a}.lock\n"
        f"ln -s {world.base}/marks/victim-b {cache}/locks/build-{world.id_b}.lock\n",
        world.env(cache),
    )
    for uri, out in ((world.uri_a, "hi from A\n"), (world.uri_b, "hi from B\n")):
        for script in (False, True):  # envship exec, then the single-file runtime
            proc = _exec(world, bob, cache, uri, RUN, script=script)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == out
            warnings = _warnings(proc.stderr)
            assert len(warnings) == 1, proc.stderr
            assert "not using it" in warnings[0] and str(alice.uid) in warnings[0] or \
                "symlink" in warnings[0], warnings
    assert sorted(os.listdir(world.marks)) == []  # none of Alice's code ran, no file created
    own = cache / "users" / str(bob.uid)
    assert sorted(os.listdir(own / "envs")) == sorted([world.id_a, world.id_b])
    assert os.stat(own / "envs" / world.id_a).st_uid == bob.uid
    # Alice's own entries still serve Alice (her plants are hers to suffer)
    again = _exec(world, alice, cache, world.uri_a, "print('alice ok')")
    assert again.returncode == 0 and again.stdout == "alice ok\n", again.stderr


def test_cache_warm_by_root_is_used_by_every_user(
    world: World, users: tuple[User, User]
) -> None:
    cache = world.base / "cache"
    cache.mkdir()
    cache.chmod(0o1777)
    env = world.env(cache)
    env["HOME"] = "/root"
    old = os.umask(0o077)  # an admin's strict umask must not lock users out
    try:
        warm = subprocess.run([ENVSHIP, "cache", "warm", "--cache", str(cache), world.uri_a],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.umask(old)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == str(cache / "envs" / world.id_a)
    for user in users:
        proc = _exec(world, user, cache, world.uri_a, RUN)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "hi from A\n"
        assert _warnings(proc.stderr) == []
    assert os.listdir(cache / "users") == []  # both ran root's entries, built nothing
    assert (cache / "users").stat().st_mode & 0o7777 == 0o1777
    # an env root did not warm: each user builds it in users/<uid>/, without a warning
    alice, bob = users
    proc = _exec(world, bob, cache, world.uri_b, RUN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi from B\n" and _warnings(proc.stderr) == []
    assert os.listdir(cache / "users" / str(bob.uid) / "envs") == [world.id_b]
    # a user's prune leaves root's entries alone (and says so in no traceback)
    pruned = bob.run([world.tools.envship, "cache", "prune", "--all", "--cache", str(cache)],
                     world.env(cache))
    assert pruned.returncode == 0, pruned.stderr
    assert os.listdir(cache / "envs") == [world.id_a]


APPEND = """\
import os, sys, tinylib
layer_site = sys.argv[1]
tries = {
    "append to an imported module": lambda: open(tinylib.__file__, "a"),
    "a .pth in the view": lambda: open(os.path.join(os.path.dirname(os.path.dirname(
        tinylib.__file__)), "evil.pth"), "w"),
    "a .pth in the layer": lambda: open(os.path.join(layer_site, "evil.pth"), "w"),
    "a new module in the package": lambda: open(os.path.join(os.path.dirname(
        tinylib.__file__), "evil.py"), "w"),
}
for what, attempt in tries.items():
    try:
        attempt()
    except PermissionError:
        print(what, "refused")
    else:
        print(what, "WRITTEN")
"""


def test_a_job_cannot_write_into_layers_or_views(
    world: World, users: tuple[User, User]
) -> None:
    """As the layer's owner (its own cache) and as another user (root's warm cache) alike."""
    alice, _ = users
    own = world.base / "own-cache"
    own.mkdir()
    os.chown(own, alice.uid, alice.gid)
    warm = world.base / "warm-cache"
    warm.mkdir()
    warm.chmod(0o755)
    subprocess.run([ENVSHIP, "cache", "warm", "--cache", str(warm), world.uri_a],
                   env=world.env(warm), check=True, capture_output=True)
    for cache in (own, warm):
        layer_site = cache / "layers" / world.hex_a / "site-packages"
        proc = alice.run([world.tools.envship, "exec", "--cache", str(cache), world.uri_a,
                          "--", "python", "-c", APPEND, str(layer_site)], world.env(cache))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [
            "append to an imported module refused", "a .pth in the view refused",
            "a .pth in the layer refused", "a new module in the package refused",
        ], (cache, proc.stdout)
    # prune still removes the read-only trees
    proc = alice.run([world.tools.envship, "cache", "prune", "--all", "--cache", str(own)],
                     world.env(own))
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(own / "layers") == [] and os.listdir(own / "envs") == []


def _shared_cache_warmed_with_a(world: World) -> Path:
    """A cache root every user reaches (sticky, like /tmp) where root warmed env A."""
    cache = world.base / "cache"
    cache.mkdir()
    cache.chmod(0o1777)
    subprocess.run([ENVSHIP, "cache", "warm", "--cache", str(cache), world.uri_a],
                   env=world.env(cache), check=True, capture_output=True)
    return cache


def test_a_symlink_planted_as_another_users_area_is_not_followed(
    world: World, users: tuple[User, User]
) -> None:
    alice, bob = users
    cache = _shared_cache_warmed_with_a(world)
    trap = world.base / "tmp" / "alice-trap"
    alice.sh(f"mkdir -m 777 {trap}; ln -s {trap} {cache}/users/{bob.uid}", world.env(cache))
    proc = _exec(world, bob, cache, world.uri_b, RUN)  # not warmed: Bob needs his own area
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi from B\n"
    assert len(_warnings(proc.stderr)) == 1 and "symlink" in proc.stderr
    assert os.listdir(trap) == []  # nothing of Bob's went where Alice pointed
    fallback = world.base / "tmp" / f"envship-{bob.uid}"
    assert os.listdir(fallback / "envs") == [world.id_b]
    assert fallback.stat().st_uid == bob.uid and fallback.stat().st_mode & 0o077 == 0


HOLD = """\
import fcntl, os, sys, time
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(600)
"""


def test_a_lock_held_by_another_user_stalls_nobody(
    world: World, users: tuple[User, User]
) -> None:
    """Bob holds root's lock files (they are readable: flock needs no more) and never lets
    go. Alice's warm run does not wait for the view's in-use lock; her cold build waits
    $ENVSHIP_LOCK_WAIT for the cache lock, sees Bob holds it, and builds in her own area."""
    alice, bob = users
    cache = _shared_cache_warmed_with_a(world)
    locks = [cache / "locks" / f"env-{world.id_a}.lock", cache / "locks" / "cache.lock"]
    for lock in locks:  # what every user's runs would create in a shared cache
        lock.touch(0o644)
    holder = subprocess.Popen(
        ["setpriv", f"--reuid={bob.uid}", f"--regid={bob.gid}", "--clear-groups", "--",
         world.tools.python, "-c", HOLD, *map(str, locks)],
        stdout=subprocess.PIPE, text=True, env=world.env(cache),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        env = {**world.env(cache), "ENVSHIP_LOCK_WAIT": "1"}
        own = cache / "users" / str(alice.uid)
        for uri, env_id in ((world.uri_a, world.id_a), (world.uri_b, world.id_b)):
            proc = alice.run([world.tools.envship, "exec", "--cache", str(cache), uri, "--",
                              "python", "-c", RUN], env)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout in ("hi from A\n", "hi from B\n")
            (warning,) = _warnings(proc.stderr)
            assert f"uid {bob.uid}" in warning and "your own node cache area" in warning
            assert str(cache / "locks") in warning
            assert env_id in os.listdir(own / "envs")
        assert "waited 1 s" in warning  # the cold build waited its bound, then went on
        # root's prune does not hang on Bob's lock either: one line naming the holder
        pruned = subprocess.run([ENVSHIP, "cache", "prune", "--all", "--cache", str(cache)],
                                env=env, capture_output=True, text=True, timeout=60)
        assert pruned.returncode == 1 and f"uid {bob.uid}" in pruned.stderr, pruned.stderr
        assert len(pruned.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(cache / "envs") == [world.id_a]  # root's part untouched
