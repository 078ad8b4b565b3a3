"""Pydantic message contracts: one model per message, JSON on the wire (camelCase)."""
