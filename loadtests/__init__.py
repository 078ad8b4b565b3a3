"""Load tests: measure spawn, dispatch and kill figures of a running Mosaic system.

Benchmarks, not tests: they print figures and write them to JSON and a plot; only the
CI smoke asserts anything (no errors, no lost tasks), never timing.
"""
