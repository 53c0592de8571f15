"""Creating the customer store's own tables (campaign plans, tasks) when several processes start at once.

`MetaData.create_all(checkfirst=True)` checks, then creates: two processes can both see "missing" and the
second CREATE fails (PostgreSQL: a unique violation on pg_type). PostgreSQL's DDL is transactional, so an
advisory lock held for the transaction serialises the creators; SQLite locks the whole file for DDL, and a
lost race there is retried.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.exc import DBAPIError


def create_tables(
    engine: Engine, metadata: MetaData, lock_name: str, then: Callable[[Connection], None] | None = None
) -> None:
    """Create the tables of `metadata` that do not exist yet; safe when other processes do the same.

    Args:
        engine: the store's engine.
        metadata: the tables to create.
        lock_name: names the advisory lock on PostgreSQL (one per set of tables).
        then: more DDL to run in the same transaction after the tables exist (PostgreSQL: under the lock).
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{lock_name}:ddl"})
            metadata.create_all(conn, checkfirst=True)
            if then is not None:
                then(conn)
        return
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                metadata.create_all(conn, checkfirst=True)
                if then is not None:
                    then(conn)
            return
        except DBAPIError:  # another process created a table between the check and the create
            if attempt == 2:
                raise
