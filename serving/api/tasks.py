"""Tasks in the customer store: one per (customer, alert rule) while open, tracked until closed, every change an event.

Tables (beside the customers table `<table>`, in the same database):
- `<table>_tasks`: the tasks. A unique *partial* index on (customer_id, rule_id) over the tasks
  not yet closed makes the database itself refuse a second open task for the same customer and
  rule, so two `alerts run` at once cannot duplicate one (both SQLite and PostgreSQL have them).
- `<table>_task_events`: append-only history (created, acked, closed, resolved_by_model) with
  who (the API key's name, or the command) and when.
- `<table>_webhook_dead_letters`: notifications that failed after every retry.

State changes are single conditional UPDATEs (`... WHERE state = 'open'`): of two concurrent
requests the database lets exactly one change the row; the other sees 0 rows and gets a conflict.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    case,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from cxpredict.features.alerts import LEVELS
from cxpredict.features.sql_tables import create_tables
from cxpredict.serving.api.store import _records, make_engine

OPEN, ACKED, CLOSED = "open", "acked", "closed"
STATES: tuple[str, ...] = (OPEN, ACKED, CLOSED)
OUTCOMES: tuple[str, ...] = ("contacted", "offer_accepted", "offer_declined", "unreachable", "not_needed")
RESOLVED_BY_MODEL = "resolved_by_model"  # the outcome `alerts run` writes when a customer no longer matches
TASK_COLUMNS: tuple[str, ...] = (
    "customer_id", "rule_id", "level", "basis", "owner_id", "reason", "strategy_id", "strategy_name",
    "expected_value", "p_bottom_band", "churn_probability", "value", "model_version", "campaign",
)
_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite auto-increments only an INTEGER primary key


class TaskError(RuntimeError):
    """A task request that cannot be done; `status` is the HTTP status the API answers with."""

    status = 400


class TaskNotFound(TaskError):
    status = 404


class TaskConflict(TaskError):
    """The task is not in a state that allows the change (closed, already acked, or another client won)."""

    status = 409


class TaskForbidden(TaskError):
    """The caller's key is restricted to another owner's tasks."""

    status = 403


def tasks_table_name(table: str) -> str:
    return f"{table}_tasks"


def events_table_name(table: str) -> str:
    return f"{table}_task_events"


def dead_letters_table_name(table: str) -> str:
    return f"{table}_webhook_dead_letters"


def _now() -> datetime:
    return datetime.now(UTC)


def _tables(metadata: MetaData, table: str) -> tuple[Table, Table, Table]:
    open_state = text("state != 'closed'")
    tasks = Table(
        tasks_table_name(table), metadata,
        Column("task_id", _ID, primary_key=True, autoincrement=True),
        Column("customer_id", Text(), nullable=False),
        Column("rule_id", Text(), nullable=False),
        Column("level", Text(), nullable=False),
        Column("basis", Text(), nullable=False),  # observed | predicted
        Column("owner_id", Text(), nullable=False),
        Column("reason", Text(), nullable=False),
        Column("strategy_id", Text()),
        Column("strategy_name", Text()),
        Column("expected_value", Float(precision=53)),
        Column("p_bottom_band", Float(precision=53)),
        Column("churn_probability", Float(precision=53)),
        Column("value", Float(precision=53)),
        Column("model_version", Text()),
        Column("campaign", Text()),  # the planned campaign whose offer (or control group) the task carries
        Column("state", Text(), nullable=False, server_default=OPEN),
        Column("outcome", Text()),
        Column("note", Text()),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("acked_at", DateTime(timezone=True)),
        Column("acked_by", Text()),
        Column("closed_at", DateTime(timezone=True)),
        Column("closed_by", Text()),
        Column("created_run", Text()),
        Column("closed_run", Text()),
        Column("version", Integer(), nullable=False, server_default="1"),
    )
    Index(f"ux_{tasks.name}_open", tasks.c.customer_id, tasks.c.rule_id, unique=True,
          sqlite_where=open_state, postgresql_where=open_state)
    Index(f"ix_{tasks.name}_owner_state", tasks.c.owner_id, tasks.c.state, tasks.c.task_id)
    Index(f"ix_{tasks.name}_state", tasks.c.state, tasks.c.task_id)
    Index(f"ix_{tasks.name}_created_run", tasks.c.created_run)
    Index(f"ix_{tasks.name}_closed_run", tasks.c.closed_run)
    Index(f"ix_{tasks.name}_customer", tasks.c.customer_id, tasks.c.task_id)  # a customer's tasks (console)
    events = Table(
        events_table_name(table), metadata,
        Column("event_id", _ID, primary_key=True, autoincrement=True),
        Column("task_id", BigInteger(), nullable=False, index=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", Text(), nullable=False),
        Column("action", Text(), nullable=False),
        Column("from_state", Text()),
        Column("to_state", Text()),
        Column("outcome", Text()),
        Column("note", Text()),
    )
    dead = Table(
        dead_letters_table_name(table), metadata,
        Column("dead_letter_id", _ID, primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("url", Text(), nullable=False),
        Column("task_id", BigInteger()),
        Column("payload", Text(), nullable=False),
        Column("attempts", Integer(), nullable=False),
        Column("error", Text(), nullable=False),
    )
    return tasks, events, dead


@dataclass(frozen=True)
class SyncReport:
    """What one `alerts run` changed in the task store."""

    run_id: str
    matched: int  # (customer, rule) pairs that match now
    created: int
    kept_open: int
    resolved: int


@dataclass(frozen=True)
class TaskPage:
    tasks: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(task_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{task_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The task id a cursor points after; TaskError when it is not one this API gave out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("t"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise TaskError(f"cursor '{cursor[:40]}' is not a cursor from this API") from None


class TaskStore:
    """The task tables of a customer store.

    Args:
        url: SQLAlchemy URL of the store (the customer store's).
        table: the customers table name; the task tables are named after it.
        engine: an engine to share (the customer store's), instead of one of its own.
    """

    def __init__(self, url: str, table: str = "customers", engine: Engine | None = None):
        self.url = url
        self.table = table
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(url)
        self.metadata = MetaData()
        self.tasks, self.events, self.dead_letters = _tables(self.metadata, table)

    def create(self) -> None:
        """Create the tables and indexes that do not exist yet (concurrent callers are fine)."""
        create_tables(self.engine, self.metadata, self.tasks.name, then=self._add_missing_columns)

    def _add_missing_columns(self, conn: Connection) -> None:
        """Stores written before a column or index existed gain it (nullable, so old rows stay valid)."""
        for index in self.tasks.indexes:
            index.create(conn, checkfirst=True)
        existing = {c["name"] for c in inspect(conn).get_columns(self.tasks.name)}
        for column in (c for c in self.tasks.columns if c.name not in existing):
            kind = column.type.compile(dialect=self.engine.dialect)
            conn.execute(text(f'ALTER TABLE "{self.tasks.name}" ADD COLUMN "{column.name}" {kind}'))

    def dispose(self) -> None:
        if self._own_engine:
            self.engine.dispose()

    # -- alerts run -----------------------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        return insert(table)

    def sync(self, matches: pd.DataFrame, actor: str, run_id: str | None = None) -> SyncReport:
        """Make the open tasks match `matches` (one row per matching (customer, rule), TASK_COLUMNS).

        New pairs get an `open` task; pairs with an open or acked task keep it (never a duplicate,
        enforced by the partial unique index even against a concurrent run); open tasks whose pair no
        longer matches are closed with outcome `resolved_by_model` (kept, not deleted). Acked tasks are
        left to the person working on them. Every change is an event.

        Args:
            matches: the pairs that match now.
            actor: who is running (written into the events).
            run_id: the run's id (default: a new one).
        Returns:
            The counts.
        """
        run_id = run_id or uuid.uuid4().hex
        self.create()
        staging = Table(
            f"{self.tasks.name}__run_{run_id[:12]}", MetaData(),
            *[Column(c.name, c.type) for c in self.tasks.columns if c.name in TASK_COLUMNS],
        )
        # Without it the "still matches?" check below scans the staging table once per open task:
        # quadratic, hours at a million customers.
        Index(f"ix_{staging.name}_pair", staging.c.customer_id, staging.c.rule_id)
        now = _now()
        rows = matches.loc[:, list(TASK_COLUMNS)]
        staging.create(self.engine)
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(rows), 5_000):
                    conn.execute(staging.insert(), _records(rows.iloc[start:start + 5_000]))
            t, s = self.tasks, staging
            same_pair = and_(t.c.customer_id == s.c.customer_id, t.c.rule_id == s.c.rule_id)
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    # Concurrent runs queue here instead of inserting in different orders and deadlocking;
                    # the partial unique index is still what forbids a duplicate.
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": t.name})
                still_open = exists().where(same_pair, t.c.state != CLOSED)
                new_columns = [*TASK_COLUMNS, "state", "created_at", "updated_at", "created_run", "version"]
                source = select(
                    *[s.c[c] for c in TASK_COLUMNS],
                    _literal(OPEN, t.c.state.type), _literal(now, t.c.created_at.type),
                    _literal(now, t.c.updated_at.type), _literal(run_id, t.c.created_run.type),
                    _literal(1, t.c.version.type),
                ).where(~still_open)
                conn.execute(
                    self._insert(t).from_select(new_columns, source).on_conflict_do_nothing()
                    if self.engine.dialect.name in ("postgresql", "sqlite")
                    else insert(t).from_select(new_columns, source)
                )
                # Counted by run id: drivers differ in what rowcount says for INSERT ... SELECT ... ON CONFLICT.
                created = conn.execute(select(func.count()).where(t.c.created_run == run_id)).scalar_one()
                self._events_for(conn, t.c.created_run == run_id, actor, "created", None, OPEN, None, now)
                # A campaign planned after a task opened decides the task's offer: the treated group gets
                # the planned offer, the control group none (an offer there would spoil the comparison).
                replan = exists().where(same_pair, s.c.campaign.is_not(None),
                                        or_(t.c.campaign.is_(None), t.c.campaign != s.c.campaign))
                for state in (OPEN, ACKED):
                    self._events_for(conn, and_(t.c.state == state, replan), actor, "replanned", state, state,
                                     None, now)
                planned = {c: select(s.c[c]).where(same_pair).scalar_subquery()
                           for c in ("strategy_id", "strategy_name", "expected_value", "reason", "campaign")}
                conn.execute(update(t).where(t.c.state != CLOSED, replan).values(
                    **planned, updated_at=now, version=t.c.version + 1))
                matched_now = exists().where(s.c.customer_id == t.c.customer_id, s.c.rule_id == t.c.rule_id)
                conn.execute(
                    update(t).where(t.c.state == OPEN, ~matched_now).values(
                        state=CLOSED, outcome=RESOLVED_BY_MODEL, closed_at=now, closed_by=actor, updated_at=now,
                        closed_run=run_id, version=t.c.version + 1,
                    )
                )
                resolved = conn.execute(select(func.count()).where(t.c.closed_run == run_id)).scalar_one()
                self._events_for(conn, t.c.closed_run == run_id, actor, RESOLVED_BY_MODEL, OPEN, CLOSED,
                                 RESOLVED_BY_MODEL, now)
        finally:
            staging.drop(self.engine, checkfirst=True)
        return SyncReport(run_id, len(rows), int(created), len(rows) - int(created), int(resolved))

    def active_pairs(self) -> dict[tuple[str, str], str | None]:
        """(customer_id, rule_id) -> campaign of every task not closed.

        `alerts run` explains and simulates only the pairs that are new or whose campaign changes: the
        others keep their task as it is.
        """
        self.create()
        t = self.tasks
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.customer_id, t.c.rule_id, t.c.campaign).where(t.c.state != CLOSED))
            return {(str(c), str(r)): campaign for c, r, campaign in rows}

    def _events_for(self, conn: Any, where: Any, actor: str, action: str, from_state: str | None,
                    to_state: str, outcome: str | None, at: datetime) -> None:
        t, e = self.tasks, self.events
        source = select(
            t.c.task_id, _literal(at, e.c.at.type), _literal(actor, e.c.actor.type),
            _literal(action, e.c.action.type), _literal(from_state, e.c.from_state.type),
            _literal(to_state, e.c.to_state.type), _literal(outcome, e.c.outcome.type),
        ).where(where)
        conn.execute(insert(e).from_select(
            ["task_id", "at", "actor", "action", "from_state", "to_state", "outcome"], source))

    # -- reading ----------------------------------------------------------------------------------

    def list(self, owner: str | None = None, level: str | None = None, state: str | None = None,
             limit: int = 100, cursor: str | None = None, restrict_owner: str | None = None) -> TaskPage:
        """Tasks in task-id order, `limit` at a time; `next_cursor` continues after the last one.

        Args:
            owner, level, state: filters.
            limit: page size.
            cursor: from a previous page.
            restrict_owner: the caller may only see this owner's tasks (row-level restriction).
        Returns:
            One page.
        """
        t = self.tasks
        if restrict_owner is not None and owner is not None and owner != restrict_owner:
            raise TaskForbidden(f"owner '{owner}': this API key is restricted to owner '{restrict_owner}'")
        query = select(t)
        owner = owner if owner is not None else restrict_owner
        if owner is not None:
            query = query.where(t.c.owner_id == owner)
        if level is not None:
            query = query.where(t.c.level == level)
        if state is not None:
            query = query.where(t.c.state == state)
        if cursor is not None:
            query = query.where(t.c.task_id > decode_cursor(cursor))
        query = query.order_by(t.c.task_id).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        more = len(rows) == limit
        return TaskPage(rows, encode_cursor(rows[-1]["task_id"]) if more and rows else None)

    def get(self, task_id: int, restrict_owner: str | None = None) -> dict[str, Any]:
        """One task with its events, oldest first."""
        with self.engine.connect() as conn:
            row = conn.execute(select(self.tasks).where(self.tasks.c.task_id == task_id)).mappings().first()
            if row is None:
                raise TaskNotFound(f"task {task_id} not found")
            _check_owner(row, restrict_owner)
            events = conn.execute(
                select(self.events).where(self.events.c.task_id == task_id).order_by(self.events.c.event_id)
            ).mappings().all()
        return {**dict(row), "events": [dict(e) for e in events]}

    def frame(self, state: str | None = None, owner: str | None = None) -> pd.DataFrame:
        """Tasks as a DataFrame (hand-off files, campaign results)."""
        t = self.tasks
        query = select(t)
        if state is not None:
            query = query.where(t.c.state == state)
        if owner is not None:
            query = query.where(t.c.owner_id == owner)
        with self.engine.connect() as conn:
            return pd.read_sql(query.order_by(t.c.task_id), conn)

    def most_urgent(self, limit: int = 100, owner: str | None = None) -> list[dict[str, Any]]:
        """Tasks not closed, most urgent first: level (critical first), then expected value, then age."""
        t = self.tasks
        rank = case({level: i for i, level in enumerate(LEVELS)}, value=t.c.level, else_=len(LEVELS))
        query = select(t).where(t.c.state != CLOSED)
        if owner is not None:
            query = query.where(t.c.owner_id == owner)
        query = query.order_by(rank, t.c.expected_value.is_(None), t.c.expected_value.desc(), t.c.task_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.limit(limit)).mappings().all()]

    def for_customer(self, customer_id: str, owner: str | None = None) -> list[dict[str, Any]]:
        """Every task of one customer (closed ones too), newest first; `owner` restricts to that owner's."""
        t = self.tasks
        query = select(t).where(t.c.customer_id == customer_id)
        if owner is not None:
            query = query.where(t.c.owner_id == owner)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(t.c.task_id.desc())).mappings().all()]

    def open_summary(self) -> list[dict[str, Any]]:
        """Open (not closed) tasks per level and owner, with the oldest creation time (metrics)."""
        t = self.tasks
        query = select(t.c.level, t.c.owner_id, func.count().label("n"), func.min(t.c.created_at).label("oldest"),
                       ).where(t.c.state != CLOSED).group_by(t.c.level, t.c.owner_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    # -- lifecycle --------------------------------------------------------------------------------

    def ack_task(self, task_id: int, actor: str, restrict_owner: str | None = None) -> dict[str, Any]:
        """open -> acked; TaskConflict when the task is not open (acked or closed, or another client won)."""
        return self._change(task_id, actor, restrict_owner, (OPEN,), ACKED, "acked", None, None)

    def close_task(self, task_id: int, actor: str, outcome: str, note: str | None = None,
              restrict_owner: str | None = None) -> dict[str, Any]:
        """open or acked -> closed with an outcome; TaskConflict when already closed."""
        if outcome not in OUTCOMES:
            raise TaskError(f"unknown outcome '{outcome}', use one of {list(OUTCOMES)}")
        return self._change(task_id, actor, restrict_owner, (ACKED, OPEN), CLOSED, "closed", outcome, note)

    def _change(self, task_id: int, actor: str, restrict_owner: str | None, from_states: Sequence[str],
                to_state: str, action: str, outcome: str | None, note: str | None) -> dict[str, Any]:
        t = self.tasks
        now = _now()
        values: dict[str, Any] = {"state": to_state, "updated_at": now, "version": t.c.version + 1}
        if to_state == ACKED:
            values.update(acked_at=now, acked_by=actor)
        else:
            values.update(closed_at=now, closed_by=actor, outcome=outcome, note=note)
        with self.engine.begin() as conn:
            # Writes first: SQLite then takes its write lock at once (a read first could not upgrade under
            # contention), and PostgreSQL locks the row; the state condition lets exactly one change win.
            from_state = None
            for state in from_states:
                where = [t.c.task_id == task_id, t.c.state == state]
                if restrict_owner is not None:
                    where.append(t.c.owner_id == restrict_owner)
                if conn.execute(update(t).where(*where).values(**values)).rowcount == 1:
                    from_state = state
                    break
            if from_state is None:
                row = conn.execute(select(t.c.state, t.c.owner_id).where(t.c.task_id == task_id)).mappings().first()
                if row is None:
                    raise TaskNotFound(f"task {task_id} not found")
                _check_owner(row, restrict_owner)
                verb = "ack" if action == "acked" else "close"
                raise TaskConflict(f"task {task_id} is {row['state']}: cannot {verb} it")
            conn.execute(insert(self.events).values(
                task_id=task_id, at=now, actor=actor, action=action, from_state=from_state, to_state=to_state,
                outcome=outcome, note=note,
            ))
        return self.get(task_id)

    def dead_letter(self, url: str, task_id: int | None, payload: str, attempts: int, error: str) -> None:
        self.create()
        with self.engine.begin() as conn:
            conn.execute(insert(self.dead_letters).values(at=_now(), url=url, task_id=task_id, payload=payload,
                                                          attempts=attempts, error=error))

    def dead_letter_frame(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(select(self.dead_letters).order_by(self.dead_letters.c.dead_letter_id), conn)


def _check_owner(row: Mapping[str, Any], restrict_owner: str | None) -> None:
    if restrict_owner is not None and row["owner_id"] != restrict_owner:
        raise TaskForbidden(f"this task belongs to another owner; this API key is restricted to owner "
                            f"'{restrict_owner}'")


def _literal(value: Any, type_: Any) -> Any:
    return literal(value, type_)


def level_order(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def campaign_results_frame(tasks: pd.DataFrame) -> pd.DataFrame:
    """Closed tasks that carried an offer, as campaign results: customer, strategy, treated=1, outcome, date.

    Only tasks closed by a person with a real outcome count (never `resolved_by_model`); the
    strategy loop's `campaign results` appends them to the campaigns history (see
    `serving.api.alerting.append_task_results`).
    """
    closed = tasks[(tasks["state"] == CLOSED) & tasks["outcome"].isin(OUTCOMES) & tasks["strategy_id"].notna()]
    return pd.DataFrame({
        "customer_id": closed["customer_id"].astype(str).to_numpy(),
        "strategy": closed["strategy_id"].astype(str).to_numpy(),
        "treated": 1,
        "outcome": closed["outcome"].to_numpy(),
        "date": pd.to_datetime(closed["closed_at"], utc=True).dt.strftime("%Y-%m-%d").to_numpy(),
        "task_id": closed["task_id"].to_numpy(),
        "campaign": (closed["campaign"] if "campaign" in closed else pd.Series(None, index=closed.index)).to_numpy(),
    })


def contact_outcomes(tasks: pd.DataFrame, campaign: str) -> pd.Series:
    """customer -> the outcome of the last closed task that carried this campaign's planned offer.

    Outcomes written by a person only (`resolved_by_model` is no contact); a customer with several
    closed tasks for the campaign counts by the most recent close.
    """
    if tasks.empty or "campaign" not in tasks:
        return pd.Series(dtype=object, name="contact_outcome")
    closed = tasks[(tasks["state"] == CLOSED) & tasks["outcome"].isin(OUTCOMES)
                   & (tasks["campaign"].astype("string") == campaign)]
    closed = closed.sort_values(["closed_at", "task_id"])
    last = closed.drop_duplicates("customer_id", keep="last")
    return pd.Series(last["outcome"].to_numpy(object), index=last["customer_id"].astype(str).to_numpy(),
                     name="contact_outcome")
