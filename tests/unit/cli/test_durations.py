"""Every option that is a duration in seconds, or a rate, takes finite values up to a stated
bound: an endless one (``inf``, ``1e308``) is refused in one line, never passed on to a
deadline, a timer or a token bucket that would misread it."""

from __future__ import annotations

import pytest
from command import invoke, main_error
from hypothesis import given, settings
from hypothesis import strategies as st

DURATIONS: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    (("verifier", "status", "--device-id", "d", "--plaintext"), "--timeout-s", ()),
    (("verifier", "enrol", "--keystore", "ks", "--plaintext"), "--timeout-s", ()),
    (("verifier", "serve"), "--grace-s", ()),
    (("verifier", "serve"), "--checkpoint-every-s", ()),
    (("landmark", "serve", "--key", "no-such-key"), "--audit-every-s", ()),
    (("demo",), "--duration", ("--scenario", "no-such.toml")),
    (("demo",), "--cadence", ("--scenario", "no-such.toml")),
    (("bench", "gpu"), "--seconds", ("--size", "1")),
    (("landmark", "serve", "--key", "no-such-key"), "--rate", ()),
    (("landmark", "serve", "--key", "no-such-key"), "--burst", ()),
]
"""Each duration option, the arguments before it, and arguments after it that stop the
command at once should the duration be taken (a missing file, a refused size)."""


@pytest.mark.parametrize(("args", "option", "after"), DURATIONS)
@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "-1"])
def test_an_endless_or_negative_duration_is_refused(
    args: tuple[str, ...], option: str, after: tuple[str, ...], value: str
) -> None:
    assert option in main_error(*args, option, value, *after)


@settings(max_examples=25, deadline=None)
@given(seconds=st.floats(min_value=1.0, allow_nan=False))
def test_a_deadline_the_parser_accepts_is_a_deadline_the_call_keeps(seconds: float) -> None:
    """Against a port that refuses connections, an accepted deadline ends in UNAVAILABLE at
    once; one gRPC misread would end in DEADLINE_EXCEEDED."""
    result = invoke(
        "verifier",
        "status",
        "--device-id",
        "d",
        "--plaintext",
        "--target",
        "127.0.0.1:1",
        "--timeout-s",
        repr(seconds),
    )
    assert result.returncode == 2, result
    assert ("--timeout-s" in result.stderr) or ("UNAVAILABLE" in result.stderr), result.stderr
