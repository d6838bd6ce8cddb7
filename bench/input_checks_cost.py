"""CPU time of the input checks that run per operator action or per proof: the console's
token inspector (it counts a pasted token's nesting) and the pipeline's range check of an
evidence number (nine per proof at k = 4).

Run: ``python bench/input_checks_cost.py`` (a few seconds), and the same with
``PYTHONPATH`` naming another checkout's ``src`` (a checkout without the range check prints
``-`` for it), alternating the two; beside ``stress-ng --cpu 2`` for the loaded figures.
Prints the minimum over repeats of CPU µs per call (``time.process_time``).
"""

from __future__ import annotations

import base64
import json
import time
import timeit
from collections.abc import Callable

from geoattest.console.tokens import inspect_token


def _part(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def result_shaped_token() -> str:
    """A token shaped like a result with eight bounds, its key not published: the inspector
    decodes both parts, counts their nesting and stops at the key lookup."""
    bounds = [
        {"landmark_id": f"lm-{i}", "latitude": 1.3 + i, "longitude": 103.8, "rtt_min_ns": 9000}
        for i in range(8)
    ]
    claims = {"eat_profile": "tag:geoattest", "submods": {"location": {"bounds": bounds}}}
    return f"{_part({'alg': 'ES256', 'kid': 'result-1'})}.{_part(claims)}.c2ln"


def cpu_us(call: Callable[[], object], number: int, repeat: int) -> float:
    runs = timeit.repeat(call, number=number, repeat=repeat, timer=time.process_time)
    return min(runs) / number * 1e6


def main() -> None:
    token, jwks = result_shaped_token(), {"keys": [{"kid": "other"}]}
    inspector = cpu_us(lambda: inspect_token(token, jwks), 2000, 5)
    try:
        from geoattest.verifier.pipeline import in_store_range  # noqa: PLC0415
    except ImportError:
        range_check = "-"
    else:
        range_check = (
            f"{cpu_us(lambda: in_store_range(123456789, 'round trip'), 200_000, 7) * 1e3:.0f} ns"
        )
    print(f"inspect_token {inspector:.1f} µs; in_store_range {range_check}")


if __name__ == "__main__":
    main()
