"""The customer store: the customers table in SQL (SQLite by default, PostgreSQL by URL), looked up by key.

`load_store` copies a dataset's customers (and who answered the survey, with their score) into
two tables and swaps them in at the end, so a running server never reads a half-loaded store.
`CustomerStore` is what the API reads: rows by primary key, and the silent customers in chunks.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    exists,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeEngine

from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset

logger = logging.getLogger(__name__)
INSERT_CHUNK = 5_000
OBSERVED_COLUMN = "observed_score"


class StoreError(RuntimeError):
    """The store is missing, empty or does not hold what the model needs."""


def respondents_table_name(table: str) -> str:
    return f"{table}_respondents"


def make_engine(url: str) -> Engine:
    """An engine usable from the server's worker threads."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # timeout: writers (an `alerts run`, a task close) wait for each other instead of failing at once.
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 60}, pool_pre_ping=False)
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _sql_type(series: pd.Series) -> TypeEngine:
    if pd.api.types.is_bool_dtype(series):
        return Boolean()
    if pd.api.types.is_integer_dtype(series):
        return BigInteger()
    if pd.api.types.is_float_dtype(series):
        return Float(precision=53)
    if pd.api.types.is_datetime64_any_dtype(series):
        return DateTime(timezone=getattr(series.dtype, "tz", None) is not None)
    return Text()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values with None for missing (what every DB driver accepts)."""
    out = frame.astype(object).where(frame.notna(), None)
    records = out.to_dict("records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, pd.Timestamp):
                record[key] = value.to_pydatetime()
            elif isinstance(value, np.generic):
                record[key] = value.item()
    return records


@dataclass
class StoreLoadReport:
    url: str
    table: str
    customers: int
    respondents: int


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def load_store(config: CxConfig, dataset: Dataset, url: str, table: str = "customers") -> StoreLoadReport:
    """Copy the customers table (primary key = id column) and the survey respondents into the store.

    Args:
        config: the dataset config (id column, score column).
        dataset: the loaded and validated tables.
        url: SQLAlchemy URL of the store.
        table: name of the customers table; respondents go to `<table>_respondents`.
    Returns:
        What was written.
    """
    customers = dataset.customers
    id_column = config.id_column
    survey = dataset.survey[[id_column, config.score.column]].rename(columns={config.score.column: OBSERVED_COLUMN})
    engine = make_engine(url)
    suffix = uuid.uuid4().hex[:8]
    staging = {table: f"{table}__load_{suffix}", respondents_table_name(table): f"{table}_r__load_{suffix}"}
    metadata = MetaData()
    customers_table = Table(
        staging[table], metadata,
        *[Column(c, Text() if c == id_column else _sql_type(customers[c]), primary_key=c == id_column)
          for c in customers.columns],
    )
    respondents_table = Table(
        staging[respondents_table_name(table)], metadata,
        Column(id_column, Text(), primary_key=True), Column(OBSERVED_COLUMN, Integer()),
    )
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            for start in range(0, len(customers), INSERT_CHUNK):
                conn.execute(customers_table.insert(), _records(customers.iloc[start:start + INSERT_CHUNK]))
            if len(survey):
                conn.execute(respondents_table.insert(), _records(survey))
        # Swap the loaded tables in: drop the old ones and rename in one transaction.
        existing = set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            for final, loading in staging.items():
                if final in existing:
                    conn.execute(text(f"DROP TABLE {_quote(engine, final)}"))
                conn.execute(text(f"ALTER TABLE {_quote(engine, loading)} RENAME TO {_quote(engine, final)}"))
    except Exception:
        metadata.drop_all(engine, checkfirst=True)
        raise
    finally:
        engine.dispose()
    return StoreLoadReport(url, table, len(customers), len(survey))


class CustomerStore:
    """Read access to the store: rows by primary key, respondents, and silent customers in chunks.

    Args:
        url: SQLAlchemy URL.
        table: the customers table name.
        id_column: its primary key.
    """

    def __init__(self, url: str, table: str, id_column: str):
        self.url = url
        self.table_name = table
        self.id_column = id_column
        self.engine = make_engine(url)
        self._lock = threading.Lock()
        self._customers: Table | None = None
        self._respondents: Table | None = None
        self.error: str | None = None
        # SQLite file stores answer single-id lookups through one sqlite3 connection per thread
        # with fixed SQL (sqlite3 caches the prepared statement): a SQLAlchemy checkout, statement
        # build and row mapping per request cost more than the model's prediction.
        self._sqlite_path = _sqlite_file(self.engine)
        self._local = threading.local()
        # Weak: a connection dies (and closes) with its thread's local storage; close() closes the rest.
        self._connections: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._fast: _FastLookup | None = None

    def refresh(self) -> bool:
        """(Re)read the tables' definitions; False (with `error` set) when the store is not loaded."""
        with self._lock:
            try:
                metadata = MetaData()
                customers = Table(self.table_name, metadata, autoload_with=self.engine)
                respondents = Table(respondents_table_name(self.table_name), metadata, autoload_with=self.engine)
            except Exception as err:  # missing table, unreachable server: the store is not ready
                self._customers = self._respondents = None
                self.error = f"customer store not loaded ({type(err).__name__}); run `cxpredict store load`"
                return False
            if self.id_column not in customers.c:
                self._customers = self._respondents = None
                self.error = f"store table '{self.table_name}' has no id column '{self.id_column}'"
                return False
            self._customers, self._respondents, self.error = customers, respondents, None
            self._fast = _FastLookup.build(self.engine, customers, respondents, self.id_column) \
                if self._sqlite_path else None
            return True

    @property
    def ready(self) -> bool:
        return self._customers is not None

    def _tables(self) -> tuple[Table, Table]:
        customers, respondents = self._customers, self._respondents
        if customers is None or respondents is None:
            raise StoreError(self.error or "customer store not loaded")
        return customers, respondents

    @property
    def columns(self) -> dict[str, TypeEngine]:
        """Column name -> SQL type of the customers table."""
        customers, _ = self._tables()
        return {c.name: c.type for c in customers.columns}

    def count(self) -> int:
        customers, _ = self._tables()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(customers)).scalar_one())

    def _sqlite(self) -> sqlite3.Connection:
        """This thread's own connection to the SQLite file (opened once, reused by every lookup)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit: a reader never holds a transaction open, so `store load` can swap tables.
            conn = sqlite3.connect(self._sqlite_path, timeout=60, isolation_level=None, check_same_thread=False,
                                   factory=_ThreadConnection)
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def get(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Customer rows by id (ids not in the store are absent from the result)."""
        customers, _ = self._tables()
        fast = self._fast
        if fast is not None and len(ids) == 1:
            row = self._sqlite().execute(fast.customer_sql, (ids[0],)).fetchone()
            return {} if row is None else {str(ids[0]): fast.customer_record(row)}
        key = customers.c[self.id_column]
        condition = key == ids[0] if len(ids) == 1 else key.in_(list(ids))
        with self.engine.connect() as conn:
            rows = conn.execute(select(customers).where(condition)).mappings().all()
        return {str(row[self.id_column]): dict(row) for row in rows}

    def observed(self, ids: Sequence[str]) -> dict[str, int | None]:
        """Survey score of the ids that answered the survey."""
        _, respondents = self._tables()
        fast = self._fast
        if fast is not None and len(ids) == 1:
            row = self._sqlite().execute(fast.observed_sql, (ids[0],)).fetchone()
            return {} if row is None else {str(ids[0]): (None if row[0] is None else int(row[0]))}
        key = respondents.c[self.id_column]
        condition = key == ids[0] if len(ids) == 1 else key.in_(list(ids))
        with self.engine.connect() as conn:
            rows = conn.execute(select(key, respondents.c[OBSERVED_COLUMN]).where(condition)).all()
        return {str(r[0]): (None if r[1] is None else int(r[1])) for r in rows}

    def observed_scores(self) -> pd.Series:
        """Every respondent's survey score (the observed side of the console's band mix)."""
        _, respondents = self._tables()
        with self.engine.connect() as conn:
            rows = conn.execute(select(respondents.c[OBSERVED_COLUMN])).scalars().all()
        return pd.Series([r for r in rows if r is not None], dtype=float)

    def iter_silent(self, chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
        """Customers who did not answer the survey, in chunks of rows (bounded memory)."""
        customers, respondents = self._tables()
        answered = exists().where(respondents.c[self.id_column] == customers.c[self.id_column])
        query = select(customers).where(~answered).order_by(customers.c[self.id_column])
        with self.engine.connect().execution_options(stream_results=True) as conn:
            yield from pd.read_sql(query, conn, chunksize=chunk_size)

    def iter_customers(self, chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
        """Every customer, in id order and chunks, with `observed_score` (missing for the silent ones)."""
        customers, respondents = self._tables()
        key = customers.c[self.id_column]
        query = (
            select(customers, respondents.c[OBSERVED_COLUMN])
            .select_from(customers.outerjoin(respondents, respondents.c[self.id_column] == key))
            .order_by(key)
        )
        with self.engine.connect().execution_options(stream_results=True) as conn:
            yield from pd.read_sql(query, conn, chunksize=chunk_size)

    def distinct(self, column: str) -> list[Any]:
        """The distinct values of one customers column (routing values an owners table must cover)."""
        customers, _ = self._tables()
        if column not in customers.c:
            raise StoreError(f"store table '{self.table_name}' has no column '{column}'")
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(customers.c[column]).distinct()).all()]

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            conn.close()
        self.engine.dispose()


class _ThreadConnection(sqlite3.Connection):
    """A sqlite3 connection that can be weakly referenced (the C type cannot)."""


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (None for other databases and in-memory SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return database if database and database != ":memory:" and not database.startswith("file:") else None


@dataclass(frozen=True)
class _FastLookup:
    """Fixed SQL for one id and the SQLAlchemy type processors, so a raw row reads as SQLAlchemy's would."""

    customer_sql: str
    observed_sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def build(cls, engine: Engine, customers: Table, respondents: Table, id_column: str) -> _FastLookup:
        quote = engine.dialect.identifier_preparer.quote
        names = tuple(c.name for c in customers.columns)
        # The same result processors SQLAlchemy applies (DATETIME text -> datetime, BOOLEAN 0/1 -> bool),
        # so the encoder sees identical values on both paths.
        processors = tuple(c.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
                           for c in customers.columns)
        column_list = ", ".join(quote(n) for n in names)
        return cls(
            customer_sql=f"SELECT {column_list} FROM {quote(customers.name)} WHERE {quote(id_column)} = ?",
            observed_sql=(f"SELECT {quote(OBSERVED_COLUMN)} FROM {quote(respondents.name)} "
                          f"WHERE {quote(id_column)} = ?"),
            names=names, processors=processors,
        )

    def customer_record(self, row: Sequence[Any]) -> dict[str, Any]:
        return {name: value if proc is None or value is None else proc(value)
                for name, proc, value in zip(self.names, self.processors, row, strict=True)}
