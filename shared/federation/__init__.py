"""Federation: signed commands between Mosaic instances (hub and spoke).

- ``identity``: this instance's id and Ed25519 key pair under ``MOSAIC_HOME``.
- ``envelope``: the signed COMMAND/response envelope and its canonical form.
- ``agents``: who owns which federated agent (spoke) and which remote agents a hub spawned.

The peer registry and the replay cache are the gateway's alone
(``services/gateway/federation/peers.py``, ``replay.py``); what stays here is what more
than one side reads: the wire format, the identity the CLI makes, and agent ownership,
which the store keeps.

See docs/federation.md for the handshake, the command flow and the security properties.
"""
