"""Federation: signed commands between Mosaic instances (hub and spoke).

- ``identity``: this instance's id and Ed25519 key pair under ``MOSAIC_HOME``.
- ``envelope``: the signed COMMAND/response envelope and its canonical form.
- ``peers``: the peer registry in Valkey (pending, active, suspended, revoked).
- ``replay``: seen message ids and stored answers (replay protection, safe retries).
- ``agents``: who owns which federated agent (spoke) and which remote agents a hub spawned.

See docs/federation.md for the handshake, the command flow and the security properties.
"""
