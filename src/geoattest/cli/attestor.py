"""The on-chip agent as a command."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The on-chip agent (attester).", no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[Path, typer.Option(help="Agent configuration JSON (see attestor.runner).")],
) -> None:
    """Enrol, then attest on the configured cadence until SIGINT or SIGTERM.

    Prints one JSON event per line: enrolled, booted, proof, result, unreachable. The
    licence and its lapse time are sealed (licence_state in the config, licence.sealed
    beside it by default): a restart keeps them; a rolled-back, edited or missing file
    boots the chip degraded until a fresh result arrives.
    """
    from geoattest.attestor.runner import AgentConfig, AgentProcess, print_event  # noqa: PLC0415

    agent = AgentProcess(AgentConfig.load(config), print_event)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await agent.run(stop)

    asyncio.run(main())
