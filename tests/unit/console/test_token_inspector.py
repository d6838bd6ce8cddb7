"""Whatever text is pasted into the token inspector, it is inspected and its page rendered:
a header or claims nested deep enough to exhaust a parser or a renderer is shown as not a
token, never as a server error."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.console import pages
from geoattest.console.tokens import MAX_NESTING, inspect_token

JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "", "y": ""}]}


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _nested(depth: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * depth + inner + closer * depth


HEADER = _segment(json.dumps({"alg": "ES256", "kid": "k1"}).encode())
DEPTHS = st.integers(min_value=0, max_value=50_000)
PARTS = st.one_of(
    st.builds(_nested, DEPTHS, st.just(b'{"a":'), st.just(b"}")),
    st.builds(_nested, DEPTHS, st.just(b"["), st.just(b"]"), st.just(b"")),
    st.builds(
        lambda depth: b'{"a":' + _nested(depth, b"[", b"]", b"") + b"}",
        DEPTHS,
    ),
    st.binary(max_size=64),
).map(_segment)
TOKENS = st.one_of(
    st.builds(lambda header, claims: f"{header}.{claims}.c2ln", PARTS, PARTS),
    st.builds(lambda claims: f"{HEADER}.{claims}.c2ln", PARTS),
    st.text(max_size=200),
)


@settings(max_examples=150, deadline=None)
@given(token=TOKENS)
def test_any_pasted_text_is_inspected_and_rendered(token):
    inspection = inspect_token(token, JWKS)
    assert not inspection.valid
    page = pages.tokens_page(token, inspection)
    assert "INVALID" in page


def test_claims_nested_past_the_limit_are_not_shown_but_shallow_ones_are():
    shallow = {"a": {"b": [1, 2]}}
    shown = inspect_token(f"{HEADER}.{_segment(json.dumps(shallow).encode())}.c2ln", JWKS)
    assert shown.claims == shallow
    deep = _nested(MAX_NESTING + 1, b'{"a":', b"}")
    hidden = inspect_token(f"{HEADER}.{_segment(deep)}.c2ln", JWKS)
    assert hidden.claims == {}
    assert hidden.header == {"alg": "ES256", "kid": "k1"}
