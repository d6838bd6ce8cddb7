"""One HOST:PORT parser for flags and configuration files."""

from __future__ import annotations

import pytest

from geoattest.address import HostPort, parse_address
from geoattest.errors import ConfigError


def test_an_address_is_a_host_and_a_port():
    address = parse_address("127.0.0.1:50051")
    assert address == HostPort("127.0.0.1", 50051)
    assert address == ("127.0.0.1", 50051)  # a socket address as it is
    assert str(address) == "127.0.0.1:50051"
    assert parse_address("::1:443") == HostPort("::1", 443)  # the port follows the last colon


@pytest.mark.parametrize("text", ["localhost", ":80", "host:", "host:x", "host:70000", "h:²"])
def test_a_malformed_address_names_itself_and_what_it_is(text):
    with pytest.raises(ConfigError, match=f"landmark lm-1 address {text!r} is not HOST:PORT"):
        parse_address(text, "landmark lm-1 address")


def test_port_zero_is_only_for_listening():
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_address("127.0.0.1:0")
    assert parse_address("127.0.0.1:0", "--listen", any_port=True).port == 0
