"""Things with a resource, a thread or a socket behind them, usable with ``with``."""

from __future__ import annotations

import signal
from types import TracebackType
from typing import Self


class Closing:
    """Base for a holder of a resource: ``with`` returns it and calls ``close()`` however
    the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Running(Closing):
    """Base for a component with ``start()`` and ``stop()``; ``with`` starts and stops it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self


def worker_signals() -> None:
    """The start of a worker process that a command runs and ends itself. Ctrl-C signals
    the terminal's whole process group, and the command stops its workers on its own way
    out, so a worker ignores SIGINT rather than print a KeyboardInterrupt traceback of its
    own over the command's exit. The SIGTERM that stops it ends it at once (the default),
    not through the handler a forked worker inherits from the command: the exception that
    handler raises can be lost where Python swallows exceptions, and the worker then waits
    for ever on the pool's queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
