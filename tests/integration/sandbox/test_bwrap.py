"""The bwrap sandbox under attack: each test tries what an agent must not manage.

Secrets in ``$MOSAIC_HOME``, keys in the spawner's environment or in ``/proc`` of its
processes, the network, writes outside the worktree, children that try to outlive a
kill (``setsid``, ``nohup``, double fork), and the killswitch's view from another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.agentrepo import shared_objects_of
from shared.sandbox.base import Limits, SandboxError, SandboxSpec, SandboxUnavailableError
from shared.sandbox.bwrap import BwrapSandbox, BwrapSandboxFactory
from shared.sandbox.cgroups import _bases
from shared.sandbox.processes import Lifeline
from shared.sandbox.procgroups import ProcessGroupRegistry
from shared.sandbox.settings import SandboxSettings
from tests.conftest import agent_repository, git

from .conftest import marked, none_marked, require_bwrap, spawn_children, wait_marked

pytestmark = pytest.mark.integration

TOKEN = "mosaic-test-admin-token-0123456789"
KEY = "sk-ant-test-key-do-not-leak-0123456789"


@pytest.fixture
async def factory() -> BwrapSandboxFactory:
    await require_bwrap()
    return BwrapSandboxFactory(SandboxSettings())


@pytest.fixture
def mosaic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Mosaic home as ``mosaic up`` makes it: secrets, and the agent's worktree inside."""
    home = tmp_path / "mosaic-home"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "api-token").write_text(TOKEN)
    (home / "secrets" / "admin-token").write_text(TOKEN)
    monkeypatch.setenv("MOSAIC_HOME", str(home))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "app.py").write_text("x = 1\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    repo = home / "repos" / "demo"
    git(tmp_path, "init", "-q", "--bare", str(repo))
    git(repo, "fetch", "-q", str(seed), "main:refs/remotes/origin/main")
    agent_repository(repo, "agent-1", "1")
    return home


@pytest.fixture
async def box(factory: BwrapSandboxFactory, mosaic_home: Path) -> AsyncIterator[BwrapSandbox]:
    tree = mosaic_home / "repos" / "demo_worktrees" / "agent-1"
    sandbox = await factory.create(
        SandboxSpec("agent-1", "task-1", tree, readonly=(shared_objects_of(tree),))
    )
    yield sandbox
    await sandbox.close()


async def run(box: BwrapSandbox, command: str, timeout: float = 20) -> tuple[int, str]:
    result = await box.exec(command, timeout=timeout)
    return result.exit_code, result.output


async def test_mosaic_home_cannot_be_read(box: BwrapSandbox, mosaic_home: Path) -> None:
    secret = mosaic_home / "secrets" / "api-token"
    _, out = await run(
        box,
        f"cat {secret}; cat ../../../secrets/api-token; cat $MOSAIC_HOME/secrets/api-token; "
        f"ls {mosaic_home}; cat /proc/1/root{secret}",
    )
    assert TOKEN not in out
    assert "No such file" in out
    _, found = await run(box, "find / -name 'api-token' -o -name 'admin-token' 2>/dev/null")
    assert found.strip() == ""


async def test_mosaic_home_under_a_visible_dir_is_covered(
    factory: BwrapSandboxFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /opt is shown read-only: a MOSAIC_HOME living there must still be invisible.
    try:
        home = Path(tempfile.mkdtemp(prefix="mosaic-test-home-", dir="/opt"))
    except OSError:
        pytest.skip("cannot make a directory under /opt (needs root)")
    try:
        (home / "secrets").mkdir()
        (home / "secrets" / "api-token").write_text(TOKEN)
        os.chmod(home / "secrets" / "api-token", 0o644)  # readable by all on the host
        monkeypatch.setenv("MOSAIC_HOME", str(home))
        (tmp_path / "wt").mkdir()
        sandbox = await factory.create(SandboxSpec("a", "t", tmp_path / "wt"))
        try:
            code, out = await run(sandbox, f"ls -A {home}; cat {home}/secrets/api-token")
        finally:
            await sandbox.close()
        assert code != 0
        assert TOKEN not in out
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_world_unreadable_system_files_are_covered(box: BwrapSandbox) -> None:
    hidden = [p for p in ("/etc/shadow", "/etc/gshadow") if Path(p).exists()]
    if not hidden:
        pytest.skip("no /etc/shadow on this host")
    code, out = await run(box, "cat " + " ".join(hidden))
    assert code != 0 or not out.strip()
    assert "root:" not in out


async def test_keys_in_the_spawner_environment_do_not_reach_it(
    factory: BwrapSandboxFactory, mosaic_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("MOSAIC_API_TOKEN", TOKEN)
    sandbox = await factory.create(
        SandboxSpec("a", "t", mosaic_home / "repos" / "demo_worktrees" / "agent-1")
    )
    try:
        _, out = await run(
            sandbox,
            f"env; cat /proc/*/environ | tr '\\0' '\\n'; cat /proc/{os.getpid()}/environ; "
            f"cat /proc/{os.getppid()}/environ; ls /proc",
        )
    finally:
        await sandbox.close()
    assert KEY not in out
    assert TOKEN not in out
    # the spawner's own pid is not a process of the sandbox's pid namespace
    numbers = {line for line in out.splitlines() if line.isdigit()}
    assert str(os.getpid()) not in numbers or os.getpid() < 10


async def test_host_proc_is_not_visible(box: BwrapSandbox) -> None:
    code, out = await run(box, "ls /proc | grep -c '^[0-9]'")
    assert code == 0
    # bwrap's init, the lifeline's watcher, the shell, ls, grep: nothing of the host
    assert int(out.strip()) <= 5


async def test_no_network(factory: BwrapSandboxFactory, mosaic_home: Path) -> None:
    tree = mosaic_home / "repos" / "demo_worktrees" / "agent-1"
    seen: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "s.sendall(b'leak')\nprint('connected')\n"
    )
    (tree / "probe.py").write_text(probe)
    try:
        sandbox = await factory.create(SandboxSpec("a", "t", tree))
        try:
            _, out = await run(sandbox, "python3 probe.py; cat /proc/net/dev")
        finally:
            await sandbox.close()
        assert "connected" not in out
        assert "lo:" in out
        assert "eth" not in out
        assert seen == []
        # network is refused unless the host's own network is accepted by a setting...
        with pytest.raises(SandboxUnavailableError, match="BWRAP_HOST_NETWORK"):
            await factory.create(SandboxSpec("a", "t", tree, network=True))
        # ...and then the same probe reaches the listener: the test can fail
        sharing = BwrapSandboxFactory(SandboxSettings(bwrap_host_network=True))
        open_box = await sharing.create(SandboxSpec("a", "t", tree, network=True))
        try:
            _code, out = await run(open_box, "python3 probe.py")
        finally:
            await open_box.close()
        assert "connected" in out
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        assert seen == [b"leak"]
    finally:
        server.close()
        await server.wait_closed()


async def test_writes_only_its_worktree(box: BwrapSandbox, mosaic_home: Path) -> None:
    """Its worktree (its own repository, ``.git`` included) is writable; the cache objects
    it borrows are shown read-only at their path; nothing else of the host is writable."""
    tree = mosaic_home / "repos" / "demo_worktrees" / "agent-1"
    objects = mosaic_home / "repos" / "demo" / "objects"
    name = f"mosaic-probe-{uuid.uuid4().hex[:8]}"
    host_home = Path.home()
    _code, out = await run(
        box,
        f"echo ok > {name} && echo ok > /tmp/{name} && echo ok > $HOME/{name} && echo wrote; "
        f"for d in /etc /usr /opt {host_home} /var/tmp /; do "
        f"  echo x > $d/{name} 2>/dev/null && echo LEAK $d; done; "
        # the read-only bind of the cache objects makes their parents in the sandbox's
        # own /tmp here (the test's home is under /tmp): writable there, never the host's
        f"for d in {mosaic_home} {tree.parent}; do echo x > $d/{name} 2>/dev/null; done; "
        f"for d in {objects} {objects}/pack {objects}/info; do "
        f"  echo x > $d/{name} 2>/dev/null && echo LEAK $d; done; "
        f"ls {objects}/info >/dev/null && echo objects-visible",
    )
    assert "wrote" in out
    assert "LEAK" not in out
    assert "objects-visible" in out
    assert (tree / name).read_text() == "ok\n"
    for where in (Path("/tmp"), host_home, mosaic_home, tree.parent, Path("/etc"), Path("/opt")):
        assert not (where / name).exists(), where
    assert not (objects / name).exists()


async def test_tmp_and_home_are_private_and_fresh(box: BwrapSandbox) -> None:
    code, _ = await run(box, "echo secret > /tmp/left && echo x > $HOME/left")
    assert code == 0
    code, out = await run(box, "ls -A /tmp $HOME")
    assert "left" not in out  # each command gets fresh ones


@pytest.mark.parametrize("how", ["kill", "close", "timeout", "exit"])
async def test_no_process_survives(box: BwrapSandbox, how: str) -> None:
    marker = f"mosaic-survivor-{how}-{uuid.uuid4().hex[:8]}"
    command = spawn_children(marker) + ("echo started" if how == "exit" else "sleep 1000")
    task = asyncio.create_task(box.exec(command, timeout=1.5 if how == "timeout" else 60))
    if how != "exit":
        await wait_marked(marker, 3)
        assert len(marked(marker)) >= 3
    if how == "kill":
        await box.kill()
    elif how == "close":
        await box.close()
    result = await asyncio.wait_for(task, 10)
    assert result.timed_out == (how == "timeout")
    assert await none_marked(marker), [p.info["cmdline"] for p in marked(marker)]


async def test_killswitch_ends_a_running_command_from_another_process(
    factory: BwrapSandboxFactory, mosaic_home: Path, redis: Redis, unique: str
) -> None:
    registry = ProcessGroupRegistry(redis, f"t{unique}")
    recording = BwrapSandboxFactory(factory.settings, registry)
    sandbox = await recording.create(
        SandboxSpec("agent-ks", "t", mosaic_home / "repos" / "demo_worktrees" / "agent-1")
    )
    marker = f"mosaic-killswitch-{uuid.uuid4().hex[:8]}"
    try:
        task = asyncio.create_task(sandbox.exec(spawn_children(marker) + "sleep 1000", timeout=60))
        await wait_marked(marker, 3)
        members: list[str] = []
        for _ in range(100):  # recorded just after the spawn, which the markers may beat
            if members := await registry.members("agent-ks"):
                break
            await asyncio.sleep(0.05)
        assert len(members) == 1
        # the killswitch's side: another process that only has the recorded members
        killer = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys\n"
                "from shared.sandbox.procgroups import kill_groups\n"
                "print(json.dumps(kill_groups(json.loads(sys.argv[1]))))",
                json.dumps(members),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        assert len(json.loads(killer.stdout)) == 1
        result = await asyncio.wait_for(task, 10)
        assert result.exit_code != 0
        assert await none_marked(marker)
        assert await registry.members("agent-ks") == []
    finally:
        await sandbox.close()


async def test_runs_as_a_normal_user(factory: BwrapSandboxFactory) -> None:
    """bwrap needs no root: the same view works for an unprivileged uid."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become another user")
    tree = Path(tempfile.mkdtemp(prefix="mosaic-user-wt-", dir="/tmp"))
    try:
        os.chmod(tree, 0o755)
        os.chown(tree, 65534, 65534)
        sandbox = BwrapSandbox(SandboxSpec("a", "t", tree), factory.bwrap, factory.settings)
        lifeline = Lifeline()  # what ProcessGroups gives each command: open while it runs
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                *sandbox.argv("id -u; echo made > here && cat here; cat /etc/shadow"),
            ],
            stdin=lifeline.reader,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={},
        )
        lifeline.cut()
        assert "made" in result.stdout, result.stderr
        assert "65534" in result.stdout
        assert "root:" not in result.stdout
        assert (tree / "here").stat().st_uid == 65534
    finally:
        shutil.rmtree(tree, ignore_errors=True)


SPAWNER = """
import asyncio, sys
from pathlib import Path
from shared.sandbox.base import Limits, SandboxSpec, SandboxUnavailableError
from shared.sandbox.bwrap import BwrapSandboxFactory

async def main() -> None:
    box = await BwrapSandboxFactory().create(SandboxSpec("a", "t", Path(sys.argv[1])))
    await box.exec(sys.argv[2], timeout=600)

asyncio.run(main())
"""


def cgroup_dirs() -> list[Path]:
    """Every sandbox cgroup directory made under this process's cgroups."""
    return [p for base in _bases().values() for p in base.glob("mosaic-*")]


async def test_a_dead_spawner_takes_its_sandboxes_with_it(
    factory: BwrapSandboxFactory, tmp_path: Path
) -> None:
    # The spawner is SIGKILLed: no finally runs, nobody kills anything; --die-with-parent
    # must end bwrap and its whole namespace on its own.
    marker = f"mosaic-orphan-{uuid.uuid4().hex[:8]}"
    (tmp_path / "wt").mkdir()
    spawner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SPAWNER,
            str(tmp_path / "wt"),
            spawn_children(marker) + "sleep 1000",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    try:
        await wait_marked(marker, 3)
        spawner.kill()
        spawner.wait()
        assert await none_marked(marker), [p.info["cmdline"] for p in marked(marker)]
        # its cgroup (where one could be made) is left behind, and the next check sweeps it
        left = [p for p in cgroup_dirs() if p.name.startswith(f"mosaic-{spawner.pid}.")]
        await BwrapSandboxFactory(factory.settings).check()
        assert not any(p.exists() for p in left)
    finally:
        if spawner.poll() is None:
            spawner.kill()


FORKS = """
import os, time
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print("forked", n)
"""


async def test_cgroup_bounds_processes_even_for_root(
    factory: BwrapSandboxFactory, tmp_path: Path
) -> None:
    (tmp_path / "wt").mkdir()
    sandbox = await factory.create(SandboxSpec("a", "t", tmp_path / "wt", limits=Limits(pids=48)))
    try:
        if sandbox.cgroup is None or not {"pids", "unified"} & set(sandbox.cgroup.controllers):
            pytest.skip("no writable cgroup here (needs root or a delegated cgroup subtree)")
        dirs = list(sandbox.cgroup.dirs.values())
        # a fork bomb held by the cgroup: RLIMIT_NPROC alone would not stop root
        _, out = await run(sandbox, f"python3 -c '{FORKS}'")
        forked = int(out.split("forked")[-1])
        assert 0 < forked < 48
        code, out = await run(sandbox, "echo alive")
        assert (code, out.strip()) == (0, "alive")
    finally:
        await sandbox.close()
    assert not any(d.exists() for d in dirs)  # removed with the sandbox
    assert not [p for p in cgroup_dirs() if p in dirs]


async def test_a_planted_link_is_never_a_read_only_mount(
    factory: BwrapSandboxFactory, tmp_path: Path
) -> None:
    # bwrap would mount what a link points to: a read-only path that is a link (say one
    # an agent planted where the cache objects were) is refused, not followed
    (tmp_path / "wt").mkdir()
    (tmp_path / "objects").symlink_to("/etc")
    for shown in (tmp_path / "objects", Path("relative"), tmp_path / "missing"):
        with pytest.raises(SandboxError, match="read-only mount"):
            await factory.create(SandboxSpec("a", "t", tmp_path / "wt", readonly=(shown,)))
