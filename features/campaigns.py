"""Campaign plans in the customer store and the campaigns history they feed: record, read, append results.

A plan (`cxpredict campaign plan`) is recorded in two tables of the customer store (SQLite by
default, PostgreSQL by URL): `campaign_plans` (one row per planned customer: strategy, group
treated / control, rank, expected figures, reason) and `campaign_index` (one row per campaign:
its wave number and settings as JSON). Results (`cxpredict campaign results`, the API, closed
tasks) are checked against the plan and appended to the config's `data.campaigns` file as rows of
that campaign's wave — never overwriting earlier rows, written atomically, so a bad file changes
nothing.

This module sits in features/ (the data contract) because training (the CLI's plans and reports)
and serving (the API's routes) both read and write these tables, and neither may import the other.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Column, DateTime, Engine, Float, Integer, MetaData, Table, Text, create_engine, delete, select

from cxpredict.features.config import CxConfig, FileTable
from cxpredict.features.io import write_csv_atomic
from cxpredict.features.load import DataError, read_table, source_label
from cxpredict.features.sql_tables import create_tables

PLAN_TABLE, INDEX_TABLE = "campaign_plans", "campaign_index"
TREATED, CONTROL = "treated", "control"
CAMPAIGN_COLUMN, WAVE_COLUMN, DATE_COLUMN = "campaign", "wave", "date"
CONTACT_OUTCOME_COLUMN = "contact_outcome"  # from closed front-line tasks (cxpredict alerts)
DEFAULT_CHURN_COLUMN = "churned"
PLAN_COLUMNS = ("customer", "strategy", "strategy_name", "group", "rank", "expected_value", "expected_delta_churn",
                "expected_delta_score", "value", "cost", "problem_group", "reason")


class CampaignError(DataError):
    """A campaign request that cannot be honoured (unknown name, bad results); nothing was changed.

    `column` and `rows` (0-based) say where in a results table the problem is, so the API can
    answer with the field path; `unknown_campaign` marks a name that is not recorded (HTTP 404).
    """

    def __init__(self, message: str, column: str | None = None, rows: list[int] | None = None,
                 unknown_campaign: bool = False):
        super().__init__(message)
        self.column = column
        self.rows = rows or []
        self.unknown_campaign = unknown_campaign


def default_store_url(config: CxConfig) -> str:
    """SQLite file `cxstore.db` beside the MLflow store (or beside the config when MLflow is remote)."""
    uri = config.tracking_uri
    folder = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else config.base_dir
    return f"sqlite:///{(folder / 'cxstore.db').resolve()}"


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"check_same_thread": False})
    return create_engine(url, pool_pre_ping=True)


def _tables(metadata: MetaData) -> tuple[Table, Table]:
    plans = Table(
        PLAN_TABLE, metadata,
        Column("campaign", Text(), primary_key=True), Column("customer", Text(), primary_key=True),
        Column("strategy", Text()), Column("strategy_name", Text()), Column("group", Text()),
        Column("rank", Integer()), Column("expected_value", Float(precision=53)),
        Column("expected_delta_churn", Float(precision=53)), Column("expected_delta_score", Float(precision=53)),
        Column("value", Float(precision=53)), Column("cost", Float(precision=53)),
        Column("problem_group", Text()), Column("reason", Text()),
    )
    index = Table(
        INDEX_TABLE, metadata,
        Column("campaign", Text(), primary_key=True), Column("wave", Integer()),
        Column("created_at", DateTime()), Column("settings", Text()),
    )
    return plans, index


@dataclass(frozen=True)
class CampaignInfo:
    """One recorded campaign: its name, wave, creation time and settings (holdout, seed, figures)."""

    name: str
    wave: int
    created_at: datetime
    settings: dict[str, Any]


class PlanStore:
    """The campaign tables of the customer store.

    Args:
        url: SQLAlchemy URL of the customer store.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        metadata = MetaData()
        self.plans, self.index = _tables(metadata)
        create_tables(self.engine, metadata, PLAN_TABLE)

    def close(self) -> None:
        self.engine.dispose()

    def campaigns(self) -> list[CampaignInfo]:
        """Every recorded campaign, oldest wave first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.index).order_by(self.index.c.wave)).mappings().all()
        return [CampaignInfo(r["campaign"], int(r["wave"]), r["created_at"], json.loads(r["settings"])) for r in rows]

    def info(self, name: str) -> CampaignInfo:
        """One campaign's record; an unknown name is a CampaignError naming the known ones."""
        for campaign in self.campaigns():
            if campaign.name == name:
                return campaign
        known = ", ".join(c.name for c in self.campaigns()) or "none yet"
        raise CampaignError(f"{self.url_label}: unknown campaign '{name}' (known: {known})", unknown_campaign=True)

    @property
    def url_label(self) -> str:
        """The store's URL without any password (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    def plan(self, name: str) -> pd.DataFrame:
        """The planned customers of a campaign (columns PLAN_COLUMNS), in rank order."""
        self.info(name)
        with self.engine.connect() as conn:
            query = select(self.plans).where(self.plans.c.campaign == name).order_by(self.plans.c.rank)
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        return frame.drop(columns=["campaign"]).reindex(columns=list(PLAN_COLUMNS))

    def next_wave(self) -> int:
        waves = [c.wave for c in self.campaigns()]
        return max(waves, default=0) + 1

    def record(self, name: str, plan: pd.DataFrame, settings: dict[str, Any], wave: int, replace: bool) -> None:
        """Write a plan in one transaction: an existing name is refused unless `replace`.

        Args:
            name: the campaign name.
            plan: one row per planned customer with PLAN_COLUMNS.
            settings: the plan's settings and figures (JSON-able).
            wave: the campaign's wave number.
            replace: overwrite a campaign of the same name.
        """
        exists = any(c.name == name for c in self.campaigns())
        if exists and not replace:
            raise CampaignError(
                f"{self.url_label}: campaign '{name}' already exists; choose another --name or pass --replace"
            )
        rows = plan.reindex(columns=list(PLAN_COLUMNS)).astype(object).where(plan.notna(), None)
        records = [{"campaign": name, **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}}
                   for r in rows.to_dict("records")]
        with self.engine.begin() as conn:
            conn.execute(delete(self.plans).where(self.plans.c.campaign == name))
            conn.execute(delete(self.index).where(self.index.c.campaign == name))
            if records:
                conn.execute(self.plans.insert(), records)
            conn.execute(self.index.insert(), [{
                "campaign": name, "wave": wave, "created_at": datetime.now(UTC).replace(tzinfo=None),
                "settings": json.dumps(settings, default=_json_default),
            }])


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# The campaigns history (data.campaigns)
# ---------------------------------------------------------------------------------------------


def churn_column(config: CxConfig) -> str:
    """The history's churn column: `churn.column` when configured, else `churned`."""
    return config.churn.column if config.churn is not None else DEFAULT_CHURN_COLUMN


def history_path(config: CxConfig) -> Path:
    """The campaigns history file; results can only be appended to a file (not to a SQL table)."""
    source = config.data.campaigns
    where = config.base_dir / "cxpredict.yaml"
    if source is None:
        raise CampaignError(f"{where}: config key 'data.campaigns' is not set; add e.g. `campaigns: campaigns.csv` "
                            f"under data so results have a history to go to")
    if isinstance(source, str):
        return config.resolve(source)
    if isinstance(source, FileTable):
        return config.resolve(source.path)
    raise CampaignError(f"{where}: key 'data.campaigns': results can be appended to a CSV or Parquet file only")


def read_history(config: CxConfig) -> pd.DataFrame:
    """The campaigns history as stored (empty when the file does not exist yet)."""
    path = history_path(config)
    if not path.exists():
        return pd.DataFrame()
    return read_table(config, config.data.campaigns)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the history, so two appends cannot interleave their read and write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class AppendReport:
    """What `append_campaign_results` wrote."""

    campaign: str
    wave: int
    path: str
    rows: int
    treated: int
    control: int
    with_churn: int
    with_score: int
    contacted: dict[str, int] = field(default_factory=dict)  # treated customers by front-line task outcome


def _rows(mask: np.ndarray) -> str:
    positions = np.flatnonzero(mask) + 1
    shown = ", ".join(str(int(p)) for p in positions[:5])
    return f"rows {shown}" + (f" (and {len(positions) - 5} more)" if len(positions) > 5 else "")


def _positions(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def check_results(
    config: CxConfig, plan: pd.DataFrame, results: pd.DataFrame, source: str, name: str,
    known_ids: set[str] | None = None,
) -> pd.DataFrame:
    """Check a results table against the plan; return it as history rows (nothing is written here).

    Args:
        config: the dataset config (id, churn and score columns, the scale).
        plan: the campaign's plan (`PlanStore.plan`).
        results: `id_column`, the churn column and/or the score column, optional `date`.
        source: the results' name for messages (a file path, or `request body`).
        name: the campaign name.
        known_ids: every customer id of the customers table (unknown ids are named as such).
    Returns:
        The rows to append: id, strategy, treated, churn, score, campaign, date.
    """
    id_column, churn, score = config.id_column, churn_column(config), config.score.column
    if id_column not in results.columns:
        raise CampaignError(f"{source}: column '{id_column}' not found (the customer id)", column=id_column)
    present = [c for c in (churn, score) if c in results.columns]
    if not present or results[present].isna().all(axis=None):
        raise CampaignError(f"{source}: both outcomes missing: give column '{churn}' (0/1) and/or '{score}' "
                            f"(the follow-up survey score)", column=churn)
    if results.empty:
        raise CampaignError(f"{source}: no result rows")
    ids = results[id_column].astype("string")
    if ids.isna().any():
        raise CampaignError(f"{source}: column '{id_column}': missing customer id in {_rows(ids.isna().to_numpy())}",
                            column=id_column, rows=_positions(ids.isna().to_numpy()))
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        raise CampaignError(f"{source}: column '{id_column}': customer '{ids[duplicated].iloc[0]}' appears twice "
                            f"in {_rows(duplicated)}", column=id_column, rows=_positions(duplicated))
    if known_ids is not None:
        unknown = ~ids.isin(known_ids).to_numpy()
        if unknown.any():
            raise CampaignError(f"{source}: column '{id_column}': unknown customer '{ids[unknown].iloc[0]}' "
                                f"in {_rows(unknown)}", column=id_column, rows=_positions(unknown))
    planned = plan.set_index("customer")
    outside = ~ids.isin(planned.index).to_numpy()
    if outside.any():
        raise CampaignError(f"{source}: column '{id_column}': customer '{ids[outside].iloc[0]}' is not in the plan "
                            f"of campaign '{name}' in {_rows(outside)}", column=id_column, rows=_positions(outside))
    out = pd.DataFrame({id_column: ids.astype(str).to_numpy()})
    out["strategy"] = planned.loc[out[id_column], "strategy"].to_numpy()
    out["treated"] = (planned.loc[out[id_column], "group"] == TREATED).astype(int).to_numpy()
    both_missing = np.ones(len(results), bool)
    if churn in results.columns:
        values = pd.to_numeric(results[churn], errors="coerce")
        bad = (results[churn].notna() & ~values.isin([0, 1])).to_numpy()
        if bad.any():
            raise CampaignError(f"{source}: column '{churn}': churn must be 0 or 1, got "
                                f"'{results.loc[bad, churn].iloc[0]}' in {_rows(bad)}", column=churn,
                                rows=_positions(bad))
        out[churn] = pd.array(values.to_numpy(), dtype="Int64")
        both_missing &= values.isna().to_numpy()
    if score in results.columns:
        values = pd.to_numeric(results[score], errors="coerce")
        low, high = config.score.levels[0], config.score.levels[-1]
        bad = (results[score].notna() & ~values.isin(config.score.levels)).to_numpy()
        if bad.any():
            raise CampaignError(f"{source}: column '{score}': score {results.loc[bad, score].iloc[0]} is outside "
                                f"the scale {low}..{high} in {_rows(bad)}", column=score, rows=_positions(bad))
        out[score] = pd.array(values.to_numpy(), dtype="Int64")
        both_missing &= values.isna().to_numpy()
    if both_missing.any():
        raise CampaignError(f"{source}: both outcomes missing ('{churn}' and '{score}') in {_rows(both_missing)}",
                            column=churn, rows=_positions(both_missing))
    out[CAMPAIGN_COLUMN] = name
    if DATE_COLUMN in results.columns:
        dates = pd.to_datetime(results[DATE_COLUMN], errors="coerce")
        bad = (results[DATE_COLUMN].notna() & dates.isna()).to_numpy()
        if bad.any():
            raise CampaignError(f"{source}: column '{DATE_COLUMN}': not a date (YYYY-MM-DD) in {_rows(bad)}",
                                column=DATE_COLUMN, rows=_positions(bad))
        out[DATE_COLUMN] = dates.dt.strftime("%Y-%m-%d").fillna(date.today().isoformat()).to_numpy()
    else:
        out[DATE_COLUMN] = date.today().isoformat()
    return out


def recorded_plan(config: CxConfig, name: str, store_url: str | None = None) -> tuple[CampaignInfo, pd.DataFrame]:
    """A recorded campaign's info and plan rows, read from the customer store and closed again.

    Args:
        config: the dataset config.
        name: the campaign name.
        store_url: the customer store (default: `default_store_url(config)`).
    Returns:
        (info, plan).
    """
    store = PlanStore(store_url or default_store_url(config))
    try:
        return store.info(name), store.plan(name)
    finally:
        store.close()


def append_campaign_results(
    config: CxConfig, name: str, results: pd.DataFrame, store_url: str | None = None, source: str = "results",
    known_ids: set[str] | None = None, contact_outcomes: pd.Series | None = None,
) -> AppendReport:
    """Check results of a planned campaign and append them to the history as that campaign's wave.

    All checks run before anything is written, and the history is rewritten atomically (under a
    lock), so a bad row leaves the history as it was. A customer with results for this campaign
    already in the history is refused (earlier rows are never overwritten).

    Args:
        config: the dataset config (`data.campaigns` names the history file).
        name: the campaign name (as given to `campaign plan`).
        results: one row per customer: id column, churn 0/1 and/or follow-up score, optional date.
        store_url: the customer store holding the plan (default: `default_store_url(config)`).
        source: the results' name for error messages.
        known_ids: the customers table's ids, to tell unknown customers from customers outside the plan.
        contact_outcomes: customer -> outcome of the front-line task that carried the planned offer
            (`serving.api.tasks.contact_outcomes`); written as column `contact_outcome` for treated rows,
            so the history says who was really reached, not only who was assigned.
    Returns:
        What was appended.
    """
    info, plan = recorded_plan(config, name, store_url)
    path = history_path(config)
    rows = check_results(config, plan, results, source, name, known_ids)
    rows.insert(rows.columns.get_loc(CAMPAIGN_COLUMN) + 1, WAVE_COLUMN, info.wave)
    contacted: dict[str, int] = {}
    if contact_outcomes is not None and len(contact_outcomes):
        outcome = rows[config.id_column].map(contact_outcomes).where(rows["treated"] == 1)
        rows[CONTACT_OUTCOME_COLUMN] = outcome.astype(object).where(outcome.notna(), None)
        contacted = {str(k): int(v) for k, v in outcome.value_counts().items()}
    with _locked(path):
        history = read_history(config)
        if not history.empty and CAMPAIGN_COLUMN in history.columns:
            earlier = history.loc[history[CAMPAIGN_COLUMN].astype(str) == name, config.id_column].astype(str)
            again = rows[config.id_column].isin(set(earlier)).to_numpy()
            if again.any():
                raise CampaignError(
                    f"{source}: column '{config.id_column}': customer '{rows.loc[again, config.id_column].iloc[0]}' "
                    f"already has results for campaign '{name}' in {source_label(config, config.data.campaigns)} "
                    f"({_rows(again)}); earlier results are never overwritten",
                    column=config.id_column, rows=_positions(again),
                )
        combined = pd.concat([history, rows], ignore_index=True) if not history.empty else rows
        for column in ("treated", churn_column(config), config.score.column, WAVE_COLUMN):
            values = pd.to_numeric(combined[column], errors="coerce") if column in combined else None
            # Whole numbers stay whole (a concat with missing values makes them floats).
            if values is not None and values.notna().any() and (values.dropna() % 1 == 0).all():
                combined[column] = pd.array(values, dtype="Int64")
        if path.suffix.lower() == ".parquet":
            from cxpredict.features.io import write_parquet_atomic

            write_parquet_atomic(combined, path)
        else:
            write_csv_atomic(combined, path)
    churn, score = churn_column(config), config.score.column
    return AppendReport(
        campaign=name, wave=info.wave, path=str(path), rows=len(rows), treated=int(rows["treated"].sum()),
        control=int((rows["treated"] == 0).sum()),
        with_churn=int(rows[churn].notna().sum()) if churn in rows else 0,
        with_score=int(rows[score].notna().sum()) if score in rows else 0, contacted=contacted,
    )
