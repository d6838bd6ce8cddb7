"""``geoattest verifier status`` prints whether the last verdict still stands, and when it
does not, what took it away: an ALLOWED shown without that word would read as licensed."""

from __future__ import annotations

from geoattest.cli.verifier_serve import status_line
from geoattest.v1 import evidence_pb2, verifier_service_pb2


def status(**fields: object) -> verifier_service_pb2.DeviceStatus:
    return verifier_service_pb2.DeviceStatus(
        device_id="dev-1",
        state="ATTESTING",
        last_counter=4,
        last_verdict=evidence_pb2.VERDICT_ALLOWED,
        licensed_region="FRA-300",
        licence_id="EL-7",
        **fields,
    )


def test_a_standing_allowed_says_current():
    line = status_line(
        status(
            licence_version=2,
            verdict_licence_version=2,
            licence_state=verifier_service_pb2.LICENCE_STATE_IN_FORCE,
            verdict_current=True,
            standing=verifier_service_pb2.STANDING_STANDS,
        )
    )
    assert line == (
        "dev-1 ATTESTING region=FRA-300 licence=EL-7 v2 IN_FORCE counter=4 verdict=ALLOWED"
        " judged_under=v2 current"
    )


def test_an_allowed_taken_away_says_by_what():
    line = status_line(
        status(
            licence_version=3,
            verdict_licence_version=2,
            licence_state=verifier_service_pb2.LICENCE_STATE_WITHDRAWN,
            standing=verifier_service_pb2.STANDING_LICENCE_WITHDRAWN,
        )
    )
    assert line.endswith(
        "v3 WITHDRAWN counter=4 verdict=ALLOWED judged_under=v2 not-current:LICENCE_WITHDRAWN"
    )


def test_a_licence_name_with_a_line_break_or_an_escape_stays_on_the_one_line():
    reply = status(licence_version=1)
    reply.licence_id = "EL-7\nforged line\x1b[2J"
    line = status_line(reply)
    assert "\n" not in line
    assert "\x1b" not in line
    assert "licence=EL-7\\nforged line\\x1b[2J v1" in line
