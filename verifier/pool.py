"""How many database connections verifier processes hold: the one definition of the pool
size's default and of the rule that keeps N processes under the server's
``max_connections``.

Free of the database drivers, so that the command line shows the default without loading
them.
"""

POOL_SIZE = 4
"""Connections one verifier process's pool holds at most (a batch commit, the reads
beside it, an alert stream's replay)."""


def connections_at_most(processes: int, pool_size: int = POOL_SIZE) -> int:
    """The most connections ``processes`` verifier processes hold on one PostgreSQL
    server: each its pool and one more, outside it, listening for alert notifications."""
    return processes * (pool_size + 1)
