"""Structured logs: one JSON object per line, for the verifier and the landmark servers.

A log shipper reads each line as a record without parsing prose, and a line never spans
two: an unexpected exception's traceback is one string field of its record. An expected
refusal (a :class:`~geoattest.errors.GeoattestError`) is logged without a traceback: its
reason says what happened, and a refused proof is one line however often it happens.

Fields a call site adds go in ``extra={"fields": {...}}``::

    log.info("rpc", extra={"fields": {"method": "SubmitProof", "outcome": "OK"}})
    # {"time": "2026-...Z", "level": "INFO", "logger": "geoattest.verifier",
    #  "message": "rpc", "method": "SubmitProof", "outcome": "OK"}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from typing import Any

FIELDS = "fields"
"""The ``extra`` key whose mapping becomes top-level fields of the record."""


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, {}))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            line["traceback"] = "".join(traceback.format_exception(error))
        return json.dumps(line, default=str)


def configure_json_logs(level: int = logging.INFO) -> None:
    """Send every record of this process to stderr as JSON lines (a server's main)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
