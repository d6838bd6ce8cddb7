"""A landmark's address, resolved again for every round: an IP address written out is read
without the resolver, and must come out exactly as the resolver gives it."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.wire.rounds import LandmarkEndpoint, _resolve

KEY = KeySigner.generate().verifying_key


def resolver(host: str, port: int) -> tuple[object, ...]:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return family, kind, proto, address


ADDRESSES = st.ip_addresses().flatmap(
    lambda ip: st.sampled_from([str(ip), ip.exploded, ip.compressed, str(ip).upper()])
)


@given(host=ADDRESSES, port=st.integers(min_value=0, max_value=0xFFFF))
def test_an_ip_address_written_out_resolves_as_the_resolver_resolves_it(host, port):
    assert _resolve(LandmarkEndpoint("lm", host, port, KEY)) == resolver(host, port)


@given(
    host=st.sampled_from(["127.0.0.1", "::1", "127.1", "0x7f.0.0.1", "localhost"]),
    port=st.one_of(st.integers(0, 0xFFFF), st.integers(0x10000, 0x20000)),
)
def test_anything_else_is_left_to_the_resolver(host, port):
    assert _resolve(LandmarkEndpoint("lm", host, port, KEY)) == resolver(host, port)
