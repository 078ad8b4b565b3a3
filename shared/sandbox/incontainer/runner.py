"""Runs one agent command in its own process group inside the container.

argv: the time-out in seconds and the command (``sh -c``). Past the time-out the group is
SIGKILLed and the exit is 124; however the command ends, its whole group (background
jobs included) dies with it, as in the bwrap and none backends. stderr is joined to
stdout in the command itself, so the output keeps its real order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

TIMED_OUT = 124


def main() -> None:
    proc = subprocess.Popen(
        ["/bin/sh", "-c", sys.argv[2]], start_new_session=True, stderr=subprocess.STDOUT
    )
    code = None
    try:
        code = proc.wait(timeout=float(sys.argv[1]))
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(OSError):  # the group is gone already
            os.killpg(proc.pid, signal.SIGKILL)
    if code is None:
        proc.wait()
        sys.exit(TIMED_OUT)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
