"""The batch commit's per-row statements (:class:`~geoattest.verifier.store.ManyRows`) hand
the driver exactly what SQLAlchemy's own ``execute`` would: the same text and the same
values, of the same types, row for row, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Insert, Table, Update, event, insert
from sqlalchemy.exc import DBAPIError

from geoattest.verifier.store import (
    _HEAD_COLUMNS,
    _MOVE_HEAD,
    _MOVE_HEAD_KEYS,
    _PROOF_COLUMNS,
    _SUCCESSOR_COLUMNS,
    ManyRows,
    SqlStore,
    chain_heads,
    proofs,
    successors,
)

STATEMENTS: dict[str, tuple[Insert | Update, Table, Sequence[str]]] = {
    "proofs": (insert(proofs), proofs, _PROOF_COLUMNS),
    "successors": (insert(successors), successors, _SUCCESSOR_COLUMNS),
    "move head": (_MOVE_HEAD, chain_heads, (*_HEAD_COLUMNS, *_MOVE_HEAD_KEYS)),
}
KEYS = {"b_device_id": "device_id", "b_head": "digest"}
"""The compare-and-swap's own parameters, by the column each is compared with."""
BY_TYPE: dict[type, st.SearchStrategy[Any]] = {
    int: st.integers(-(2**63), 2**63 - 1),
    bytes: st.binary(max_size=40),
    bool: st.booleans(),
    str: st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
}


def rows_for(table: Table, names: Sequence[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Rows naming ``names``, each value of its column's Python type."""
    row = st.fixed_dictionaries(
        {name: BY_TYPE[table.c[KEYS.get(name, name)].type.python_type] for name in names}
    )
    return st.lists(row, min_size=1, max_size=5)


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    store = SqlStore.open(database)
    yield store._engine
    store.close()


def driver_calls(engine: Engine, run: Callable[[Connection], object]) -> list[tuple[str, Any]]:
    """What ``run`` hands the driver (text and parameters, each value with its type);
    nothing of it is kept (a refusal by the database is no matter here)."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, typed(parameters)))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.connect() as conn:
            with contextlib.suppress(DBAPIError):
                run(conn)
            conn.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return seen


def typed(value: Any) -> Any:
    """``value`` with every leaf's type beside it (``True`` and ``1`` must not read alike),
    SQLite's ``memoryview`` by its bytes, a driver's wrapper (PostgreSQL's ``Binary``) by its
    ``repr``, which shows what it wraps."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    if isinstance(value, memoryview):
        return (memoryview, value.tobytes())
    return (type(value), value if isinstance(value, int | str | bytes) else repr(value))


@pytest.mark.parametrize("which", list(STATEMENTS))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_many_rows_hand_the_driver_what_sqlalchemy_would(engine, which, data) -> None:
    statement, table, names = STATEMENTS[which]
    rows = data.draw(rows_for(table, names))
    many = ManyRows(statement, engine.dialect, names)
    ours = driver_calls(engine, lambda conn: many.execute(conn, rows))
    theirs = driver_calls(engine, lambda conn: conn.execute(statement, rows))
    assert ours == theirs
    assert len(ours) == 1


def test_names_the_statement_does_not_bind_are_refused(engine) -> None:
    with pytest.raises(ValueError, match="binds"):
        ManyRows(insert(successors), engine.dialect, [*_SUCCESSOR_COLUMNS, "nonsense"])
