"""``NATS_URL`` as a node list, and the sentinel setting: what is accepted, what is refused."""

from __future__ import annotations

import pytest

from mosaic import natsauth
from shared.natsurls import NatsUrlError, parse_nats_url
from shared.settings import ValkeySettings

pytestmark = pytest.mark.unit


def test_one_server_without_credentials() -> None:
    nodes = parse_nats_url("nats://127.0.0.1:4222")
    assert nodes.servers == ("nats://127.0.0.1:4222",)
    assert nodes.connect_options() == {"servers": ["nats://127.0.0.1:4222"]}


def test_a_node_list_with_credentials_takes_them_out_of_the_urls() -> None:
    url = natsauth.url_for("nats://h1:4222, nats://h2:4223,nats://h3", "spawner", "p@ss/w")
    nodes = parse_nats_url(url)
    assert nodes.servers == ("nats://h1:4222", "nats://h2:4223", "nats://h3")
    assert (nodes.user, nodes.password) == ("spawner", "p@ss/w")
    assert nodes.connect_options()["password"] == "p@ss/w"
    assert "p%40ss" not in natsauth.redact(url)
    assert natsauth.redact(url).count("***") == 3


def test_a_token_url_is_passed_as_a_token() -> None:
    assert parse_nats_url("nats://s3cret@h1:4222").connect_options()["token"] == "s3cret"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        (" , ", "empty"),
        ("nats://a:1@h1:4222,nats://b:2@h2:4222", "different credentials"),
        ("nats://a:1@h1:4222,nats://h2:4222", "different credentials"),
        ("nats://:4222", "no host"),
    ],
)
def test_bad_urls_are_refused_naming_the_setting(url: str, message: str) -> None:
    with pytest.raises(NatsUrlError, match=message) as caught:
        parse_nats_url(url)
    assert "NATS_URL" in str(caught.value)


def test_sentinels_are_host_port_pairs() -> None:
    settings = ValkeySettings(valkey_sentinels="s1:26379, 10.0.0.2:26380")
    assert settings.sentinel_addresses() == [("s1", 26379), ("10.0.0.2", 26380)]
    assert ValkeySettings(valkey_sentinels=" ").valkey_sentinels is None
    with pytest.raises(ValueError, match="VALKEY_SENTINELS"):
        ValkeySettings(valkey_sentinels="s1").sentinel_addresses()
