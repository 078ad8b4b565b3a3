"""The sandbox layer: where an agent's hands and its gates run.

One package that the spawner (agents' tools), the gates (gate commands) and the
killswitch (ending sandboxes whose spawner is gone) all use:

- ``base``: the contract (``SandboxFactory.create``, ``Sandbox.exec`` with limits and a
  timeout, ``kill``, ``close``), its spec, limits and errors;
- one module per backend: ``docker``, ``bwrap`` (bubblewrap namespaces), ``host``
  (``none``: bare host processes, unsafe, only when named); ``processes`` and
  ``hostfiles`` hold what the two host-process backends share, ``envvars`` the one
  rule for a sandbox's environment;
- ``select``: which backend runs, from ``MOSAIC_SANDBOX``; ``settings``: its knobs;
- ``containers`` and ``procgroups``: finding a sandbox by its labels or recorded
  process groups, for whoever must end it without its spawner; ``reaper``: orphans.

Nothing outside this package talks to Docker for a sandbox or spawns sandboxed processes.
"""
