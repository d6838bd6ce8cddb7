"""Following whether the database answers: the one probing loop of the verifier's server
(its gRPC health) and of the console (its pages), so that both tell a database that stopped
answering from a slow one the same way.

A probe runs on a thread, as every read does. One that has not answered within its wait (a
frozen server, a network that drops packets: the driver waits on its socket for ever) counts
as not answering, and the statements waiting on the database, the probe's among them, are
ended (:meth:`~geoattest.verifier.store.SqlStore.interrupt`), so the calls behind them fail
as :class:`~geoattest.verifier.store.StoreUnavailableError` instead of waiting. A live
database answers the probe's one-row read at once however busy it is with other work, so a
slow page or batch is never cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from geoattest.verifier.store import StoreUnavailableError

PROBE_EVERY_S = 1.0
"""How often the database is probed."""
PROBE_TIMEOUT_S = 5.0
"""How long a probe may wait before the database counts as not answering."""


async def follow_the_store(
    probe: Callable[[], None],
    interrupt: Callable[[], None],
    answered: Callable[[str | None], Awaitable[None]],
    *,
    every_s: float = PROBE_EVERY_S,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Probe every ``every_s`` until cancelled, telling ``answered`` each outcome: None
    when the database answered, else why not. After a wait of ``timeout_s``, ``interrupt``
    ends what waits on the database; no other probe starts until the last has finished."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    while True:
        await asyncio.sleep(every_s)
        if pending is None:
            pending = loop.run_in_executor(None, probe)
        why: str | None = None
        try:
            await asyncio.wait_for(asyncio.shield(pending), timeout_s)
        except TimeoutError:
            why = f"did not answer in {timeout_s:g} s"
            interrupt()
        except StoreUnavailableError as exc:
            why = f"unreachable ({exc.detail})"
        if pending.done():
            pending = None
        await answered(why)
