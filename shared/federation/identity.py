"""This instance's federation identity: an id and an Ed25519 key pair under ``MOSAIC_HOME``.

Layout (created at first start, never overwritten):

- ``<home>/secrets/federation-ed25519.pem``  the private key (PKCS#8 PEM), mode 0600,
  in a 0700 folder;
- ``<home>/federation/identity.json``  ``{"instanceId", "publicKey"}`` (public, 0644).

Public keys travel as the standard base64 (with padding) of the 32 raw key bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

INSTANCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
"""What an instance id looks like (safe in keys, subjects, task ids and URLs)."""

KEY_FILE = Path("secrets") / "federation-ed25519.pem"
IDENTITY_FILE = Path("federation") / "identity.json"


def encode_public_key(key: Ed25519PublicKey) -> str:
    """The wire form of a public key: base64 of its 32 raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Parse a wire-form public key; ValueError if it is not 32 base64-encoded bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("public key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: str | Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is the key's Ed25519 signature of ``data``."""
    key = decode_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """An instance id with its private key; signs what this instance sends."""

    instance_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        """The public key in wire form, to give to peers."""
        return encode_public_key(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.private_key.sign(data)

    @classmethod
    def generate(cls, instance_id: str | None = None) -> Identity:
        """A fresh identity (random id ``mosaic-<8 hex>`` unless given)."""
        instance_id = instance_id or f"mosaic-{secrets.token_hex(4)}"
        if not INSTANCE_ID.match(instance_id):
            raise ValueError(f"instance id {instance_id!r} must match {INSTANCE_ID.pattern}")
        return cls(instance_id, Ed25519PrivateKey.generate())


def _write_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` with ``mode`` unless it exists; True if this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # umask may have narrowed or, for 0644, not mattered
    return True


def load_identity(home: Path) -> Identity | None:
    """The identity stored under ``home``, or None if there is none yet."""
    key_path, id_path = home / KEY_FILE, home / IDENTITY_FILE
    if not key_path.exists() or not id_path.exists():
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_path} does not hold an Ed25519 private key")
    data = json.loads(id_path.read_text())
    identity = Identity(str(data["instanceId"]), key)
    if data.get("publicKey") != identity.public_key:
        raise ValueError(f"{id_path} names a public key that does not match {key_path}")
    return identity


def load_or_create_identity(home: Path, instance_id: str | None = None) -> Identity:
    """The identity under ``home``, created on first use (safe if two processes race)."""
    existing = load_identity(home)
    if existing is not None:
        return existing
    (home / KEY_FILE).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / IDENTITY_FILE).parent.mkdir(parents=True, exist_ok=True)
    fresh = Identity.generate(instance_id)
    pem = fresh.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if _write_exclusive(home / KEY_FILE, pem, 0o600):
        public = {"instanceId": fresh.instance_id, "publicKey": fresh.public_key}
        tmp = home / IDENTITY_FILE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(public, indent=2) + "\n")
        tmp.chmod(0o644)
        tmp.replace(home / IDENTITY_FILE)
        return fresh
    # Another process created the key first; wait for its identity file.
    for _ in range(100):
        found = load_identity(home)
        if found is not None:
            return found
        time.sleep(0.05)
    raise RuntimeError(f"federation identity under {home} is incomplete")
