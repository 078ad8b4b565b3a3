"""What an agent can and cannot do inside its container (docs/sandbox.md cites these)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import docker
import pytest

from shared.sandbox.base import Limits, SandboxError
from shared.sandbox.docker import DockerSandbox

from .conftest import MakeSandbox

pytestmark = pytest.mark.docker


async def run(sandbox: DockerSandbox, command: str, timeout: float = 20) -> tuple[int, str]:
    result = await sandbox.exec(command, timeout=timeout)
    return result.exit_code, result.output


def inspect(client: docker.DockerClient, sandbox: DockerSandbox) -> dict[str, Any]:
    attrs: dict[str, Any] = client.api.inspect_container(sandbox.container_id)
    return attrs


async def test_container_config_is_hardened(
    sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    info = inspect(docker_client, sandbox)
    host = info["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == host["MemorySwap"] == 1024 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 256
    assert host["Init"] is True
    assert "size=256m" in host["Tmpfs"]["/tmp"]
    mounts = info["Mounts"]
    assert [(m["Destination"], m["RW"]) for m in mounts] == [("/workspace", True)]
    labels = info["Config"]["Labels"]
    assert labels["mosaic.agent_id"] == sandbox.spec.agent_id
    assert labels["mosaic.task_id"] == sandbox.spec.task_id
    assert labels["mosaic.owner"] == sandbox.spec.owner
    assert info["Config"]["User"] == "1000:1000"
    assert info["Config"]["WorkingDir"] == "/workspace"


async def test_no_effective_capabilities(sandbox: DockerSandbox) -> None:
    code, out = await run(sandbox, "grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status")
    assert code == 0
    values = dict(line.split(":\t") for line in out.strip().splitlines())
    assert values == {
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "CapAmb": "0000000000000000",
    }


async def test_no_new_privileges_flag(sandbox: DockerSandbox) -> None:
    code, out = await run(sandbox, "grep NoNewPrivs /proc/self/status")
    assert code == 0
    assert out.split() == ["NoNewPrivs:", "1"]


async def test_runs_as_non_root(sandbox: DockerSandbox) -> None:
    code, out = await run(sandbox, "id -u; id -g; pwd")
    assert code == 0
    assert out.split() == ["1000", "1000", "/workspace"]


async def test_runs_as_worktree_owner_when_not_root(
    make_sandbox: MakeSandbox, worktree: Path
) -> None:
    for path in [worktree, *worktree.rglob("*")]:
        os.chown(path, 4242, 4343, follow_symlinks=False)
    sandbox = await make_sandbox()
    code, out = await run(sandbox, "id -u; id -g; touch made-here && echo ok")
    assert (code, out.split()) == (0, ["4242", "4343", "ok"])
    assert (worktree / "made-here").stat().st_uid == 4242


async def test_root_filesystem_is_read_only(sandbox: DockerSandbox) -> None:
    for target in ("/evil", "/etc/evil", "/usr/bin/evil", "/home/agent/evil"):
        code, out = await run(sandbox, f"touch {target}")
        assert code != 0, target
        assert "Read-only file system" in out or "Permission denied" in out


async def test_tmp_is_a_small_tmpfs(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(limits=Limits(tmp_size_mb=8))
    code, _ = await run(sandbox, "echo x > /tmp/ok && cat /tmp/ok")
    assert code == 0
    code, out = await run(sandbox, "head -c 16777216 /dev/zero > /tmp/big")
    assert code != 0
    assert "No space left on device" in out


async def test_workspace_is_writable(sandbox: DockerSandbox, worktree: Path) -> None:
    code, out = await run(
        sandbox, "echo hello > note.txt && mkdir -p a/b && echo x > a/b/c && cat note.txt"
    )
    assert (code, out) == (0, "hello\n")
    assert (worktree / "note.txt").read_text() == "hello\n"
    assert (worktree / "a" / "b" / "c").stat().st_uid == 1000
    code, _ = await run(sandbox, "echo more >> src/app.py && rm README.md")
    assert code == 0
    assert not (worktree / "README.md").exists()


async def test_the_agent_owns_its_whole_worktree(sandbox: DockerSandbox, worktree: Path) -> None:
    # A root-owned worktree is handed to the sandbox uid, root directory included: its
    # .git is the agent's own repository, and git refuses one whose directory it does not own.
    code, out = await run(
        sandbox, "stat -c %u /workspace && git init -q . && git add -A && git status --short"
    )
    assert code == 0, out
    assert out.splitlines()[0] == "1000"
    assert "README.md" in out
    assert worktree.stat().st_uid == 1000
    assert (worktree / ".git").stat().st_uid == 1000


async def test_fork_bomb_is_stopped_by_pids_limit(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(limits=Limits(pids=48))
    # Try to start 200 sleepers; the pids cgroup refuses forks past 48 processes.
    result = await sandbox.exec(
        "n=0; for i in $(seq 200); do sleep 30 & n=$((n+1)); done 2>/dev/null; "
        "echo started; ls /proc | grep -c '^[0-9]'",
        timeout=8,
    )
    assert "Resource temporarily unavailable" in result.output or result.exit_code != 0
    # The command's process group is gone and the container still answers.
    code, out = await run(sandbox, "ls /proc | grep -c '^[0-9]'")
    assert code == 0
    assert int(out.strip()) < 10


async def test_memory_limit_kills_only_the_hog(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(limits=Limits(memory_mb=96))
    result = await sandbox.exec(
        "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'", timeout=30
    )
    assert result.exit_code == 137  # SIGKILLed by the OOM killer (no swap to spill into)
    assert "419430400" not in result.output
    code, out = await run(sandbox, "echo alive")
    assert (code, out) == (0, "alive\n")


async def test_no_network(sandbox: DockerSandbox) -> None:
    # A listener on the host's loopback, reachable from the host...
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # ...is not reachable from the sandbox: its 127.0.0.1 is its own, nothing else exists.
        probe = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', e)\n"
            "try:\n"
            "    socket.getaddrinfo('mosaic-test.invalid', 80)\n"
            "    print('resolved')\n"
            "except OSError as e:\n"
            "    print('no dns', e)\n"
        )
        await sandbox.write_file("probe.py", probe.encode())
        code, out = await run(sandbox, "python3 probe.py")
    assert code == 0
    assert "refused" in out
    assert "connected" not in out
    assert "no dns" in out
    assert "resolved" not in out
    code, out = await run(sandbox, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
    assert out.split() == ["lo"]
    code, out = await run(sandbox, "tail -n +2 /proc/net/route")
    assert out.strip() == ""


async def test_network_when_asked(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = await make_sandbox(network=True)
    assert inspect(docker_client, sandbox)["HostConfig"]["NetworkMode"] == "bridge"
    _, out = await run(sandbox, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
    assert "eth0" in out.split()


async def test_no_docker_socket(sandbox: DockerSandbox) -> None:
    code, out = await run(
        sandbox,
        "for s in /var/run/docker.sock /run/docker.sock; do test -e $s && echo $s; done; true",
    )
    assert (code, out) == (0, "")


async def test_environment_has_no_secrets(
    make_sandbox: MakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-testsecret")
    monkeypatch.setenv("CLAUDE_API_KEY", "sk-ant-api03-testsecret")
    sandbox = await make_sandbox()
    code, out = await run(sandbox, "env")
    assert code == 0
    assert "sk-ant" not in out
    assert "API_KEY" not in out
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert {"HOME", "PATH"} <= names


async def test_environment_image_and_env_are_used(
    make_sandbox: MakeSandbox,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    unique: str,
) -> None:
    tag = f"mosaic-env/test-{unique}:1"
    docker_client.images.get(sandbox_image).tag(tag)
    try:
        sandbox = await make_sandbox(image=tag, env=(("PIP_DISABLE_PIP_VERSION_CHECK", "1"),))
        assert inspect(docker_client, sandbox)["Config"]["Image"] == tag
        code, out = await run(sandbox, "env")
        assert code == 0
        assert "PIP_DISABLE_PIP_VERSION_CHECK=1" in out.splitlines()
        assert "HOME=/tmp" in out.splitlines()  # the sandbox's own, whatever the env says
    finally:
        docker_client.images.remove(tag)


async def test_declared_env_cannot_set_home_or_a_secret(
    make_sandbox: MakeSandbox,
) -> None:
    for name in ("HOME", "GITHUB_TOKEN", "ANTHROPIC_API_KEY"):
        with pytest.raises(SandboxError, match=name):
            await make_sandbox(env=((name, "x"),))


async def test_missing_environment_image_is_named(make_sandbox: MakeSandbox, unique: str) -> None:
    with pytest.raises(SandboxError, match=f"environment image mosaic-env/none-{unique}"):
        await make_sandbox(image=f"mosaic-env/none-{unique}:1")


async def test_read_only_worktree(
    make_sandbox: MakeSandbox,
    docker_client: docker.DockerClient,
    worktree: Path,
) -> None:
    sandbox = await make_sandbox(writable=False)
    (mount,) = inspect(docker_client, sandbox)["Mounts"]
    assert mount["Destination"] == "/workspace"
    assert mount["RW"] is False
    code, out = await run(sandbox, "cat src/app.py && touch made-here")
    assert "def add" in out
    assert code != 0
    assert not (worktree / "made-here").exists()
    with pytest.raises(SandboxError, match="read-only"):
        await sandbox.write_file("x.txt", b"x")
