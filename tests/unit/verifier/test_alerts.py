"""Live alert streams: each subscriber gets its alerts; one that falls behind loses its
stream with a typed error rather than holding the verifier's memory."""

from __future__ import annotations

import asyncio

import pytest

from geoattest.errors import GeoattestError, Reason
from geoattest.verifier.alerts import AlertHub, AlertsOverflowError
from geoattest.verifier.store import Alert


def alert(i: int, device_id: str = "dev-1") -> Alert:
    return Alert(f"a{i}", device_id, "OUTSIDE_LICENSED_REGION", "", "", i)


async def subscribed(hub: AlertHub, device_id: str = "") -> asyncio.Task[list[Alert]]:
    """A subscriber collecting alerts until the hub closes, once it listens."""

    async def collect() -> list[Alert]:
        return [a async for a in hub.stream(device_id)]

    task = asyncio.create_task(collect())
    before = hub.subscribers
    while hub.subscribers == before:
        await asyncio.sleep(0)
    return task


async def test_a_subscriber_gets_its_devices_alerts_until_the_hub_closes():
    hub = AlertHub(asyncio.get_running_loop())
    mine, everyone = await subscribed(hub, "dev-1"), await subscribed(hub)
    hub.publish([alert(1), alert(2, "dev-2")])
    await asyncio.sleep(0.01)
    hub.close()
    assert [a.alert_id for a in await mine] == ["a1"]
    assert [a.alert_id for a in await everyone] == ["a1", "a2"]
    assert hub.subscribers == 0


async def test_a_subscriber_that_falls_behind_loses_its_stream_with_a_reason():
    hub = AlertHub(asyncio.get_running_loop(), max_queued=2)
    slow = await subscribed(hub)
    hub.publish([alert(i) for i in range(3)])  # delivered before the subscriber runs again
    with pytest.raises(AlertsOverflowError) as overflow:
        await slow
    assert isinstance(overflow.value, GeoattestError)
    assert overflow.value.reason is Reason.ALERTS_OVERFLOW
    assert hub.subscribers == 0
