"""Unit tests of the federation's pure pieces: identity files, envelope canonical form,
signing and verification, freshness, and repository limits. No servers."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from services.gateway.federation.peers import PeerLimits
from shared.federation.envelope import (
    SIGNING_CONTEXT,
    Envelope,
    canonical_json,
    check_addressed,
    check_fresh,
    check_signature,
    now_ms,
    parse,
    seal,
)
from shared.federation.errors import (
    InvalidEnvelopeError,
    SignatureError,
    StaleMessageError,
)
from shared.federation.identity import (
    Identity,
    decode_public_key,
    load_identity,
    load_or_create_identity,
    verify,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def alice() -> Identity:
    return Identity.generate("alice-1")


@pytest.fixture
def bob() -> Identity:
    return Identity.generate("bob-1")


def test_identity_is_created_once_with_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path, "inst-a")
    key = tmp_path / "secrets" / "federation-ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    public = json.loads((tmp_path / "federation" / "identity.json").read_text())
    assert public == {"instanceId": "inst-a", "publicKey": first.public_key}
    assert "PRIVATE" not in (tmp_path / "federation" / "identity.json").read_text()
    again = load_or_create_identity(tmp_path, "ignored-now")
    assert again.instance_id == "inst-a"
    assert again.public_key == first.public_key


def test_an_identity_file_that_does_not_match_the_key_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path, "inst-a")
    path = tmp_path / "federation" / "identity.json"
    other = Identity.generate("inst-b")
    path.write_text(json.dumps({"instanceId": "inst-a", "publicKey": other.public_key}))
    with pytest.raises(ValueError, match="does not match"):
        load_identity(tmp_path)


def test_public_keys_are_32_bytes_of_base64(alice: Identity) -> None:
    assert len(base64.b64decode(alice.public_key)) == 32
    decode_public_key(alice.public_key)
    for bad in ("", "not-base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match=r"base64|32 bytes"):
            decode_public_key(bad)


def test_canonical_json_sorts_keys_at_every_level_with_no_whitespace() -> None:
    data = {"b": 1, "a": {"d": [3, {"z": 1, "y": "é"}], "c": None}}
    assert canonical_json(data) == '{"a":{"c":null,"d":[3,{"y":"é","z":1}]},"b":1}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})


def test_the_signature_covers_every_field_but_itself(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.kill", {"agentId": "a1"}, bob.instance_id)
    check_signature(envelope, alice.public_key)
    fields = json.loads(envelope.canonical()[len(SIGNING_CONTEXT) :])
    assert set(fields) == {
        "version",
        "type",
        "payload",
        "sender",
        "recipient",
        "messageId",
        "timestamp",
        "inReplyTo",
    }
    changes = {
        "type": "agent.kill_all",
        "payload": {"agentId": "a2"},
        "sender": "mallory-1",
        "recipient": "carol-1",
        "message_id": "f" * 32,
        "timestamp": envelope.timestamp + 1,
        "in_reply_to": "e" * 32,
    }
    for field, value in changes.items():
        altered = envelope.model_copy(update={field: value})
        with pytest.raises(SignatureError):
            check_signature(altered, alice.public_key)


def test_the_wire_form_round_trips_to_the_same_signed_bytes(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.spawn", {"taskId": "t", "n": [1, 2.5, "ü"]}, bob.instance_id)
    received = parse(envelope.model_dump_json())
    assert received.canonical() == envelope.canonical()
    check_signature(received, alice.public_key)


def test_another_key_does_not_verify(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.status", {"agentId": "a"}, bob.instance_id)
    with pytest.raises(SignatureError):
        check_signature(envelope, bob.public_key)
    assert not verify(bob.public_key, envelope.signature_bytes(), envelope.canonical())


def test_signatures_are_domain_separated(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.status", {"agentId": "a"}, bob.instance_id)
    bare = canonical_json(envelope.unsigned())
    assert not verify(alice.public_key, envelope.signature_bytes(), bare)


def test_malformed_signatures_and_envelopes_are_refused(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.status", {"agentId": "a"}, bob.instance_id)
    for bad in ("", "***", base64.b64encode(b"x" * 63).decode()):
        with pytest.raises(SignatureError):
            check_signature(envelope.model_copy(update={"signature": bad}), alice.public_key)
    data = json.loads(envelope.model_dump_json())
    data["extra"] = 1
    with pytest.raises(InvalidEnvelopeError, match="extra"):
        parse(json.dumps(data))
    with pytest.raises(InvalidEnvelopeError, match="type"):
        parse(json.dumps({**json.loads(envelope.model_dump_json()), "type": "shell.exec"}))


def test_freshness_window(alice: Identity, bob: Identity) -> None:
    now = now_ms()
    check_fresh(seal(alice, "agent.status", {}, bob.instance_id, timestamp=now - 59_000), 60, now)
    check_fresh(seal(alice, "agent.status", {}, bob.instance_id, timestamp=now + 59_000), 60, now)
    for skew in (-61_000, 61_000):
        stale = seal(alice, "agent.status", {}, bob.instance_id, timestamp=now + skew)
        with pytest.raises(StaleMessageError):
            check_fresh(stale, 60, now)


def test_recipient_must_be_me(alice: Identity, bob: Identity) -> None:
    envelope = seal(alice, "agent.status", {}, bob.instance_id)
    check_addressed(envelope, bob.instance_id)
    with pytest.raises(InvalidEnvelopeError):
        check_addressed(envelope, "carol-1")


def test_message_ids_are_unique_and_digest_names_the_content(
    alice: Identity, bob: Identity
) -> None:
    one = seal(alice, "agent.status", {"agentId": "a"}, bob.instance_id)
    two = seal(alice, "agent.status", {"agentId": "a"}, bob.instance_id)
    assert one.message_id != two.message_id
    assert one.digest() != two.digest()
    assert Envelope.model_validate_json(one.model_dump_json()).digest() == one.digest()


@pytest.mark.parametrize(
    ("patterns", "repository", "allowed"),
    [
        ([], "/srv/repos/a.git", False),
        (["/srv/repos"], "/srv/repos/a.git", True),
        (["/srv/repos/"], "/srv/repos/a.git", True),
        (["/srv/repos"], "/srv/repos", True),
        (["/srv/repos"], "/srv/repos-evil/a.git", False),
        (["/srv/repos"], "/srv/repos/../../etc/passwd", False),
        (["/srv/repos"], "/srv/repos/./a.git", True),
        (["https://git.example.org/team/*"], "https://git.example.org/team/shop.git", True),
        (["https://git.example.org/team/*"], "https://git.example.org/other/shop.git", False),
        (["https://git.example.org/team/"], "https://git.example.org/team/x.git", True),
    ],
)
def test_repository_limits(patterns: list[str], repository: str, allowed: bool) -> None:
    assert PeerLimits(allowed_repositories=patterns).allows_repository(repository) is allowed
