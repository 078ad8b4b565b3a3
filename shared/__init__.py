"""Mosaic Orchestrator's shared library: the contracts services meet on.

Services never import each other; everything they exchange (message models, subject
names, settings, the Valkey state store and the lifecycles) lives here.
"""
