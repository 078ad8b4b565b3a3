"""``python -m loadtests chaos``: the system under repeated faults, with figures.

Each scenario starts its own embedded system (real nats-server with JetStream on disk,
valkey-server with AOF, the five services as processes, the scripted provider, a real
sandbox and a bare git remote), injects one kind of fault many times while agents run,
then checks what must hold whatever crashed: every task ends exactly once, nothing is
pushed twice, nothing is left behind. ``runner`` prints one table row per check.
"""
