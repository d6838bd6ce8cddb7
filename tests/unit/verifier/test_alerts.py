"""Alert streams over the store, on SQLite and a real PostgreSQL server: a stream replays
after its cursor, then follows alerts committed by any process on the database (another
store stands for another replica); a subscriber that reconnects with its cursor misses
nothing and sees nothing twice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from geoattest.errors import Reason, WireError
from geoattest.verdict import Verdict
from geoattest.verifier.alerts import PAGE, AlertHub
from geoattest.verifier.pipeline import Appraisal
from geoattest.verifier.store import Alert, CommitRecord, SqlStore


def alert(i: int, device_id: str = "dev-1") -> Alert:
    return Alert(f"a{i}", device_id, "OUTSIDE_LICENSED_REGION", "", "", i)


def raise_alerts(store: SqlStore, *raised: Alert) -> None:
    """Commit alerts as an appraisal with no device leaves them (nothing else stored)."""
    appraisal = Appraisal(Verdict.REJECTED, "", 0)
    store.commit([CommitRecord(appraisal, b"", b"", "", raised, 0)])


@pytest.fixture
def stores(database) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database: this replica's and another's."""
    mine, theirs = SqlStore.open(database), SqlStore.open(database)
    yield mine, theirs
    mine.close()
    theirs.close()


async def collect(hub: AlertHub, count: int, device_id: str = "", after: int | None = None):
    received = []
    async for a in hub.stream(device_id, after):
        received.append(a)
        if len(received) == count:
            break
    return received


async def listening(hub: AlertHub, task: asyncio.Task) -> None:
    while hub.subscribers == 0 and not task.done():
        await asyncio.sleep(0.01)


async def test_a_stream_replays_after_its_cursor_then_follows_every_replica(stores):
    mine, theirs = stores
    raise_alerts(mine, alert(1), alert(2, "dev-2"))
    hub = AlertHub(asyncio.get_running_loop(), mine, mine.alert_listener(), wait_s=0.05)
    try:
        everything = asyncio.create_task(asyncio.wait_for(collect(hub, 4, after=0), 60))
        dev_1 = asyncio.create_task(asyncio.wait_for(collect(hub, 2, "dev-1", after=0), 60))
        from_now = asyncio.create_task(asyncio.wait_for(collect(hub, 2), 60))
        await listening(hub, from_now)
        while hub.subscribers < 3:
            await asyncio.sleep(0.01)
        raise_alerts(theirs, alert(3))  # another replica: no publish here, only the table
        raise_alerts(mine, alert(4, "dev-2"))
        hub.publish(())
        got = await everything
        assert [a.alert_id for a in got] == ["a1", "a2", "a3", "a4"]
        assert [a.cursor for a in got] == sorted(a.cursor for a in got)
        assert [a.alert_id for a in await dev_1] == ["a1", "a3"]
        assert [a.alert_id for a in await from_now] == ["a3", "a4"]
    finally:
        hub.close()
    assert hub.subscribers == 0


async def test_a_subscriber_that_reconnects_with_its_cursor_misses_nothing(stores):
    mine, theirs = stores
    hub = AlertHub(asyncio.get_running_loop(), mine, mine.alert_listener(), wait_s=0.05)
    try:
        raise_alerts(theirs, *(alert(i) for i in range(3)))
        first = await asyncio.wait_for(collect(hub, 2, after=0), 60)
        raise_alerts(theirs, *(alert(i) for i in range(3, PAGE + 10)))  # more than a page
        rest = await asyncio.wait_for(collect(hub, PAGE + 8, after=first[-1].cursor), 60)
    finally:
        hub.close()
    assert [a.alert_id for a in first + rest] == [f"a{i}" for i in range(PAGE + 10)]


async def test_a_cursor_past_the_newest_alert_is_refused_not_waited_on(stores):
    """A cursor no alert of this database carried (a database restored from an older
    backup, or another deployment's) is refused: a stream waiting for ids past it would
    skip, without a word, every alert stored meanwhile with an id up to it."""
    mine, theirs = stores
    hub = AlertHub(asyncio.get_running_loop(), mine, mine.alert_listener(), wait_s=0.05)
    try:
        raise_alerts(theirs, alert(1))
        (first,) = await asyncio.wait_for(collect(hub, 1, after=0), 60)
        with pytest.raises(WireError) as refused:
            await collect(hub, 1, after=first.cursor + 1)
        assert refused.value.reason is Reason.OUT_OF_RANGE
        assert hub.subscribers == 0
        at_the_end = asyncio.create_task(asyncio.wait_for(collect(hub, 1, after=first.cursor), 60))
        await listening(hub, at_the_end)
        raise_alerts(theirs, alert(2))
        assert [a.alert_id for a in await at_the_end] == ["a2"]
    finally:
        hub.close()


async def test_the_hub_closing_ends_its_streams(stores):
    mine, _ = stores
    hub = AlertHub(asyncio.get_running_loop(), mine, mine.alert_listener(), wait_s=0.05)
    stream = asyncio.create_task(collect(hub, 1))
    await listening(hub, stream)
    hub.close()
    assert await asyncio.wait_for(stream, 60) == []


def test_alert_cursors_follow_commit_order_under_concurrent_writers(stores):
    """Ids drawn in one order and committed in another would let a cursor skip an alert:
    every commit with alerts, from any store, must land in id order."""
    mine, theirs = stores
    errors: list[BaseException] = []

    def write(store: SqlStore, name: str) -> None:
        try:
            for i in range(20):
                raise_alerts(
                    store,
                    Alert(f"{name}{i}x", name, "CLONE", "", "", i),
                    Alert(f"{name}{i}y", name, "CLONE", "", "", i),
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    seen: list[int] = []
    threads = [threading.Thread(target=write, args=(s, n)) for s, n in ((mine, "a"), (theirs, "b"))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        seen.extend(a.cursor for a in mine.alerts_after(seen[-1] if seen else 0))
    seen.extend(a.cursor for a in mine.alerts_after(seen[-1] if seen else 0))
    assert errors == []
    assert seen == sorted(a.cursor for a in mine.alerts()), (
        "a reader following its cursor skipped an alert"
    )
    assert len(seen) == 80


async def test_closing_a_sqlite_hub_ends_its_wait_at_once(tmp_path):
    """The watcher's poll interval never holds up a shutdown on SQLite: with an hour
    between polls, close still returns (the thread guard only stops a hang)."""
    store = SqlStore.open(str(tmp_path / "v.db"))
    try:
        hub = AlertHub(asyncio.get_running_loop(), store, store.alert_listener(), wait_s=3600)
        await asyncio.sleep(0.05)  # the watcher is inside its wait
        closing = threading.Thread(target=hub.close, daemon=True)
        closing.start()
        closing.join(timeout=60)
        assert not closing.is_alive()
    finally:
        store.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_listener_wakes_when_another_replica_commits_alerts(stores):
    """On PostgreSQL a stream learns of another replica's alerts by ``LISTEN/NOTIFY``, not
    by its poll: the listener, connected as the store's pool connects (session options
    included), returns notified at the other's commit, and not at a commit of none."""
    mine, theirs = stores
    listener = mine.alert_listener()
    try:
        assert listener.wait(30) is False  # connects and listens
        raise_alerts(theirs)
        raise_alerts(theirs, alert(1))
        assert listener.wait(30) is True
    finally:
        listener.close()
        listener.wait(0)
