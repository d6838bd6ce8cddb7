"""The landmark's pool of random bytes: only bytes its source gave, none handed out twice."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from geoattest.verifier.landmark.server import RandomPool

WORD = 8


class Counting:
    """A source whose 8-byte words are all different (a counter); it records each draw."""

    def __init__(self) -> None:
        self._next = itertools.count()
        self.drawn: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        out = b"".join(next(self._next).to_bytes(WORD, "big") for _ in range(0, size, WORD))
        self.drawn.append(out[:size])
        return out[:size]


def words(data: bytes) -> list[bytes]:
    return [data[i : i + WORD] for i in range(0, len(data), WORD)]


@given(sizes=st.lists(st.integers(min_value=1, max_value=20).map(lambda w: w * WORD)))
def test_each_draw_is_fresh_bytes_from_the_source_and_none_is_handed_out_twice(sizes):
    source = Counting()
    pool = RandomPool(source, page_bytes=8 * WORD)
    handed = [pool(size) for size in sizes]
    assert [len(h) for h in handed] == sizes
    out = [w for h in handed for w in words(h)]
    assert len(set(out)) == len(out)
    assert set(out) <= {w for d in source.drawn for w in words(d)}
