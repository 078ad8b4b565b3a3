"""The client name and version every Valkey connection announces, worked out once.

redis-py announces itself on each new connection (``CLIENT SETINFO``) and, unless told
its version, reads it from the installed package's metadata every time: a file scan of
site-packages per connection. A burst that grows the pool (a kill-all ending a hundred
agents at once) paid it a hundred times in the spawner's one event loop; profiled with
py-spy it was 6 % of the spawner's CPU across a kill-all of 100 agents.
"""

from __future__ import annotations

import redis
from redis.driver_info import DriverInfo

DRIVER_INFO = DriverInfo(lib_version=redis.__version__)
"""Pass as ``driver_info=`` to every client (or its connection kwargs)."""
