"""Things with a thread or a socket behind them: started, stopped, usable with ``with``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Running:
    """Base for a component with ``start()`` and ``stop()``; ``with`` starts and stops it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
