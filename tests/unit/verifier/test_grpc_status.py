"""The transport's one table from reasons to gRPC status codes: complete, and what its
module documents (the codes clients have always seen for each reason)."""

from __future__ import annotations

import re

import grpc

from geoattest.errors import Reason
from geoattest.verifier import grpc_server
from geoattest.verifier.grpc_server import LOOKUP_STATUS, STATUS


def documented() -> dict[grpc.StatusCode, set[Reason]]:
    """The module docstring's table: each status code's rows, the reasons they name."""
    lines = (grpc_server.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    rows: dict[grpc.StatusCode, set[Reason]] = {}
    code = None
    for line in lines[rules[0] + 1 : rules[1]]:
        name = line.split(" ", 1)[0]
        if name:
            code = grpc.StatusCode[name]
            rows[code] = set()
        assert code is not None
        rows[code] |= {Reason(v) for v in re.findall(r"``([a-z_.]+)``", line) if v in set(Reason)}
    return rows


def test_every_reason_has_a_status():
    assert set(STATUS) == set(Reason)
    assert set(LOOKUP_STATUS) == set(Reason)


def test_a_lookup_differs_only_in_an_unknown_device_being_not_found():
    differ = {r for r in Reason if LOOKUP_STATUS[r] is not STATUS[r]}
    assert differ == {Reason.UNKNOWN_DEVICE}
    assert LOOKUP_STATUS[Reason.UNKNOWN_DEVICE] is grpc.StatusCode.NOT_FOUND
    assert STATUS[Reason.UNKNOWN_DEVICE] is grpc.StatusCode.FAILED_PRECONDITION


def test_the_table_is_what_the_module_documents():
    rows = documented()
    assert set(rows) == {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
    assert rows[grpc.StatusCode.NOT_FOUND] == {
        Reason.UNKNOWN_DEVICE,
        Reason.ADMIN_NOT_FOUND,
        Reason.AUDIT_NOT_FOUND,
    }
    named = set().union(*rows.values())
    for code, reasons in rows.items():
        table = LOOKUP_STATUS if code is grpc.StatusCode.NOT_FOUND else STATUS
        assert {reason: table[reason] for reason in reasons} == dict.fromkeys(reasons, code)
    # PERMISSION_DENIED names none: it is "every other reason".
    assert {r for r in Reason if r not in named} == {
        r for r in Reason if STATUS[r] is grpc.StatusCode.PERMISSION_DENIED
    }


def test_the_statuses_clients_see_for_the_new_reasons():
    assert STATUS[Reason.STORE_CONFLICT] is grpc.StatusCode.ABORTED
    assert STATUS[Reason.STORE_UNAVAILABLE] is grpc.StatusCode.UNAVAILABLE
    assert STATUS[Reason.ALERTS_OVERFLOW] is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_unexpected_failure_and_an_out_of_range_number_have_their_own_codes():
    assert STATUS[Reason.INTERNAL] is grpc.StatusCode.INTERNAL
    assert STATUS[Reason.OUT_OF_RANGE] is grpc.StatusCode.INVALID_ARGUMENT
