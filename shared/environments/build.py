"""Building an environment image with the Docker SDK (blocking: call from a thread).

Two kinds of build context, both made from the base commit's tree and never from a
worktree:

- ``setup``: a generated Dockerfile ``FROM`` the base, the repository copied to
  ``/workspace``, then one ``RUN`` per setup command, as root, with the network and,
  when set, the CA bundle named for every common tool. A ``node_modules`` the setup
  left in ``/workspace`` moves to ``/node_modules``: the agent's worktree is mounted
  over ``/workspace`` later, and Node finds modules in any parent directory.
- ``dockerfile``: the repository's Dockerfile with its context directory and args.

Either way a last generated stage sets a non-root user and the labels, so every
environment image runs agents as non-root like the sandbox image. The context tar is
written from ``git cat-file`` output, so no attribute, filter or hook of the repository
runs on the host.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shlex
import socket
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
from docker.errors import APIError, DockerException
from urllib3.exceptions import HTTPError

from shared.environments.declaration import Declaration
from shared.environments.errors import BuildFailedError, BuildTimeoutError, DockerUnavailableError
from shared.gitread import MODE_EXECUTABLE, MODE_SYMLINK, CommitView, TreeEntry

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
CA_PATH = "/etc/mosaic/ca.crt"
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
)
"""What pip, requests, curl, npm/node, git and OpenSSL-based tools read a CA bundle from."""
DEFAULT_USER = "1000:1000"
_ROOT = ("", "root", "0", "0:0", "root:root")
_SPOOL_BYTES = 64 * 1024 * 1024

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    """One environment build: what to build, where it is read from, what to call it."""

    declaration: Declaration
    view: CommitView
    tag: str
    labels: Mapping[str, str]
    base_image: str | None
    """The base for a setup build (None for a Dockerfile build)."""
    base_user: str = ""
    """The base image's configured user, kept when it is not root."""
    ca_bundle: bytes | None = None


def final_user(declared: str | None, base_user: str) -> str:
    """Who the image runs as: the declared user, else the base's, never root."""
    if declared and declared not in _ROOT:
        return declared
    if base_user not in _ROOT:
        return base_user
    return DEFAULT_USER


SETUP_ENV = "/etc/mosaic/setup.env"


def setup_exports(env: Mapping[str, str], *, has_ca: bool) -> str:
    """The shell file every setup step sources: the declared env, the CA bundle's names."""
    exports = {"DEBIAN_FRONTEND": "noninteractive", **env}
    if has_ca:
        exports |= dict.fromkeys(CA_VARIABLES, CA_PATH)
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items())


def setup_dockerfile(base: str, setup: Iterable[str], *, has_ca: bool, user: str) -> str:
    """The generated Dockerfile of a setup build (or of the final stage, without setup)."""
    steps = list(setup)
    lines = [f"FROM {base}", "USER root"]
    if steps:
        lines.append(f"COPY mosaic-setup.env {SETUP_ENV}")
        if has_ca:
            lines.append(f"COPY mosaic-ca.crt {CA_PATH}")
        lines += [f"COPY src/ {WORKSPACE}/", f"WORKDIR {WORKSPACE}"]
        for step in steps:
            lines.append("RUN " + json.dumps(["/bin/sh", "-ec", f". {SETUP_ENV}\n{step}"]))
        hoist = (
            f"if [ -d {WORKSPACE}/node_modules ] && [ ! -e /node_modules ]; then "
            f"mv {WORKSPACE}/node_modules /node_modules; fi"
        )
        lines.append("RUN " + json.dumps(["/bin/sh", "-ec", hoist]))
    lines += [f"WORKDIR {WORKSPACE}", f"USER {user}"]
    return "\n".join(lines) + "\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def tree_to_tar(
    tar: tarfile.TarFile, view: CommitView, entries: list[TreeEntry], strip: str, prefix: str
) -> None:
    """Add ``entries`` (paths under ``strip``) to ``tar`` under ``prefix``."""
    contents = view.blobs(e.oid for e in entries)
    for entry, (_, data) in zip(entries, contents, strict=True):
        rel = entry.path[len(strip) + 1 :] if strip not in ("", ".") else entry.path
        name = f"{prefix}{rel}"
        if entry.mode == MODE_SYMLINK:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = data.decode("utf-8", "surrogateescape")
            tar.addfile(info)
        else:
            _add(tar, name, data, 0o755 if entry.mode == MODE_EXECUTABLE else 0o644)


def setup_context(req: BuildRequest, base: str, user: str) -> IO[bytes]:
    """The tar context of a setup build: Dockerfile, CA bundle, the tree under ``src/``."""
    decl = req.declaration
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned
    has_ca = req.ca_bundle is not None and bool(decl.setup)
    with tarfile.open(fileobj=spool, mode="w") as tar:
        text = setup_dockerfile(base, decl.setup, has_ca=has_ca, user=user)
        _add(tar, "Dockerfile", text.encode())
        if decl.setup:
            _add(tar, "mosaic-setup.env", setup_exports(decl.env, has_ca=has_ca).encode())
        if has_ca and req.ca_bundle is not None:
            _add(tar, "mosaic-ca.crt", req.ca_bundle)
        _add_dir(tar, "src")
        if decl.setup:
            tree_to_tar(tar, req.view, req.view.files(), "", "src/")
    spool.seek(0)
    return spool


DOCKERFILE_IN_CONTEXT = ".mosaic-environment.Dockerfile"


def dockerfile_context(req: BuildRequest) -> IO[bytes]:
    """The tar context of a Dockerfile build: the context dir, the Dockerfile beside it."""
    decl = req.declaration
    assert decl.dockerfile is not None
    dockerfile = req.view.read(decl.dockerfile)
    if dockerfile is None:
        raise BuildFailedError(f"{decl.source}: dockerfile {decl.dockerfile!r} is not in the base")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned
    with tarfile.open(fileobj=spool, mode="w") as tar:
        entries = req.view.files(decl.context)
        tree_to_tar(tar, req.view, entries, decl.context, "")
        _add(tar, DOCKERFILE_IN_CONTEXT, dockerfile)
    spool.seek(0)
    return spool


class _Stream:
    """Reads one build's JSON lines, keeps the last ones, and can be cut off."""

    def __init__(self, sink: LineSink, keep: int, timeout_s: float) -> None:
        self.sink = sink
        self.timeout_s = timeout_s
        self.tail: deque[str] = deque(maxlen=keep)
        self._sock: socket.socket | None = None
        self.cut = False
        self.reason = ""

    def abort(self, reason: str = "timeout") -> None:
        """Drop the connection: the daemon cancels the build and kills its step."""
        self.cut = True
        self.reason = reason
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def line(self, text: str) -> None:
        for piece in _ANSI.sub("", text).splitlines():
            if piece.strip():
                self.tail.append(piece.rstrip())
                self.sink(piece.rstrip())

    def run(self, api: docker.APIClient, context: IO[bytes], params: dict[str, Any]) -> str | None:
        """POST /build; the built image id, or None when the build reported an error."""
        # the SDK's build() hides the response, whose socket the timeout must cut, so this
        # uses its private request helpers (untyped in the stubs: Any on purpose)
        raw_api: Any = api
        response = raw_api._post(
            raw_api._url("/build"),
            params=params,
            data=context,
            headers={"Content-Type": "application/tar"},
            stream=True,
            timeout=None,
        )
        raw_api._raise_for_status(response)
        raw = raw_api._get_raw_response_socket(response)
        self._sock = getattr(raw, "_sock", raw)  # a SocketIO over the connection's socket
        if self.cut:
            self.abort()
        image_id: str | None = None
        failed = False
        for chunk in raw_api._stream_helper(response, decode=True):
            if "stream" in chunk:
                self.line(str(chunk["stream"]))
            if "status" in chunk:
                self.line(str(chunk["status"]))
            if "error" in chunk:
                failed = True
                self.line(str(chunk["error"]))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
        return None if failed else image_id


def _params(
    tag: str | None, dockerfile: str, labels: Mapping[str, str], args: Mapping[str, str]
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "dockerfile": dockerfile,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "q": False,
        "nocache": False,
    }
    if tag:
        params["t"] = tag
    if labels:
        params["labels"] = json.dumps(dict(labels))
    if args:
        params["buildargs"] = json.dumps(dict(args))
    return params


class BuildCancel:
    """Lets the caller stop a build running in another thread (its agent was killed, its
    spawner is stopping): the build's connection is cut, so the daemon stops it too."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._abort: Callable[[str], None] | None = None
        self.fired = False

    def attach(self, abort: Callable[[str], None]) -> None:
        with self._guard:
            self._abort = abort
            fired = self.fired
        if fired:
            abort("cancelled")

    def fire(self) -> None:
        """Stop the build now (or as soon as it starts)."""
        with self._guard:
            self.fired = True
            abort = self._abort
        if abort is not None:
            abort("cancelled")


def build_image(
    client: docker.DockerClient,
    req: BuildRequest,
    *,
    timeout_s: float,
    keep_lines: int,
    sink: LineSink,
    cancel: BuildCancel | None = None,
) -> str:
    """Build ``req`` and tag it; the image id. Raises ``BuildFailedError`` with the last
    lines, ``BuildTimeoutError`` after ``timeout_s`` (the build is cancelled)."""
    stream = _Stream(sink, keep_lines, timeout_s)
    if cancel is not None:
        cancel.attach(stream.abort)
    timer = threading.Timer(timeout_s, stream.abort)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        base, base_user = req.base_image, req.base_user
        decl = req.declaration
        if decl.dockerfile is not None:
            sink(f"building {decl.dockerfile} (context {decl.context})")
            with dockerfile_context(req) as context:
                built = _step(
                    stream, client, context, _params(None, DOCKERFILE_IN_CONTEXT, {}, decl.args)
                )
            base = built
            base_user = _image_user(client, built)
        assert base is not None
        user = final_user(decl.user, base_user)
        with setup_context(req, base, user) as context:
            image_id = _step(
                stream, client, context, _params(req.tag, "Dockerfile", req.labels, {})
            )
    except BuildFailedError:
        raise
    except APIError as exc:  # the daemon answered and refused: a bad Dockerfile or args
        if stream.cut:
            raise _timeout(stream) from exc
        raise BuildFailedError(
            f"environment build refused by Docker: {exc.explanation or exc}", tuple(stream.tail)
        ) from exc
    except Exception as exc:
        if stream.cut:  # whatever the cut connection raised: the build ran out of time
            raise _timeout(stream) from exc
        if isinstance(exc, DockerException | OSError | HTTPError):
            raise DockerUnavailableError(f"environment build: Docker failed: {exc}") from exc
        raise
    finally:
        timer.cancel()
    log.info("built %s in %.1fs", req.tag, time.monotonic() - started)
    return image_id


def _timeout(stream: _Stream) -> BuildFailedError:
    if stream.reason == "cancelled":
        return BuildFailedError("environment build cancelled", tuple(stream.tail))
    return BuildTimeoutError(
        f"environment build took longer than {stream.timeout_s:.0f}s (MOSAIC_ENV_BUILD_TIMEOUT_S) "
        "and was stopped; last lines:",
        tuple(stream.tail),
    )


def _step(
    stream: _Stream, client: docker.DockerClient, context: IO[bytes], params: dict[str, Any]
) -> str:
    image_id = stream.run(client.api, context, params)
    if stream.cut:
        raise _timeout(stream)
    if image_id is None:
        raise BuildFailedError("environment build failed; last lines:", tuple(stream.tail))
    return image_id


def image_attrs(api: docker.APIClient, image: str) -> dict[str, Any]:
    """The daemon's inspect answer for ``image`` (the stubs leave the call untyped)."""
    attrs: dict[str, Any] = api.inspect_image(image)  # type: ignore[no-untyped-call]
    return attrs


def _image_user(client: docker.DockerClient, image: str) -> str:
    attrs = image_attrs(client.api, image)
    return str((attrs.get("Config") or {}).get("User") or "")


def read_ca_bundle(path: str) -> bytes | None:
    """The CA bundle's bytes; None when no bundle is set. A set path that cannot be read
    fails the build: an unreadable bundle would only show as TLS errors much later."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BuildFailedError(f"MOSAIC_ENV_CA_BUNDLE={path} cannot be read: {exc}") from exc
