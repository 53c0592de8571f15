"""Running the alert rules: score every customer of the store, match the rules, and sync the task store.

One pass over the store in chunks (bounded memory): each chunk is scored once; the rules are
evaluated on the alert frame (customers + scores + derived columns, see features.alerts); only the
matches that become new tasks (or whose campaign plan changed) are explained (top SHAP drivers of
P(bottom band)) and simulated (best strategy by expected value): that is where a reason and a
suggestion are needed, and doing it for every match cost ~10x the scoring at a million customers.
A running campaign plan overrides the suggestion (`planned_offers`).
The resulting (customer, rule) pairs go to `TaskStore.sync` in one step at the end, so a failed
run changes nothing.

Used by `cxpredict alerts run`, after `cxpredict store load`, and by the API when the champion
changes (a child process at low priority: it never blocks scoring requests).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import inspect, text

from cxpredict.features.alerts import (
    OBSERVED_SCORE,
    P_BOTTOM,
    SCORE_DROP,
    SURVEYED,
    VALUE,
    AlertError,
    AlertRule,
    OwnerTable,
    column_kind,
    config_alert_rules,
    load_owners,
    rule_mask,
    validate_alert_rules,
)
from cxpredict.features.campaigns import CAMPAIGN_COLUMN, TREATED, CampaignError, PlanStore, read_history
from cxpredict.features.config import CxConfig
from cxpredict.features.strategies import Strategy, config_strategies
from cxpredict.models.bundle import ScoringBundle, band_column, cause_column
from cxpredict.models.scoring import CustomerScorer, ScoringOptions
from cxpredict.models.simulate import NO_STRATEGY, SimulationError, best_strategy, simulate_effects
from cxpredict.serving.api.store import OBSERVED_COLUMN, CustomerStore, StoreError
from cxpredict.serving.api.tasks import TASK_COLUMNS, SyncReport, TaskStore, contact_outcomes

logger = logging.getLogger(__name__)
DRIVERS_IN_REASON = 2
CAUSES_IN_REASON = 2
MIN_CAUSE_PROBABILITY = 0.2  # a cause below this is not worth naming to a front-line person


def scores_table_name(table: str) -> str:
    """The last scoring's expected score per customer (what `expected_score_drop` compares with)."""
    return f"{table}_alert_scores"


@dataclass(frozen=True)
class AlertSetup:
    """The rules, owners and strategy catalogue of a config, loaded and shape-checked once."""

    rules: list[AlertRule]
    owners: OwnerTable
    strategies: list[Strategy]
    source: str


def load_alert_setup(config: CxConfig) -> AlertSetup:
    """Rules (`alerts`), owners (`data.owners`) and strategies (`strategies`, optional) of a config."""
    rules, source = config_alert_rules(config)
    strategies = config_strategies(config)[0] if config.strategies else []
    return AlertSetup(rules, load_owners(config), strategies, source)


@dataclass(frozen=True)
class AlertRunReport:
    """What one run found and changed."""

    sync: SyncReport
    n_customers: int
    matched_by_rule: dict[str, int]
    matched_by_level: dict[str, int]
    unrouted: int  # matches whose routing value was missing and no catch-all owner exists
    seconds: float
    model_version: str
    notes: list[str] = field(default_factory=list)


def alert_frame(bundle: ScoringBundle, chunk: pd.DataFrame, scores: pd.DataFrame, value_column: str | None,
                previous: pd.Series | None) -> pd.DataFrame:
    """Customers + their scores + the derived columns rules may use (features.alerts.ALERT_COLUMNS).

    Args:
        bundle: the model (bottom band name).
        chunk: customer rows from the store (with `observed_score`).
        scores: `CustomerScorer.score_matrix` of the same rows.
        value_column: the config's value column (value 1 when None).
        previous: the last scoring's expected score by customer id, or None.
    Returns:
        One row per customer, aligned with `chunk`.
    """
    frame = chunk.reset_index(drop=True)
    score_part = scores.drop(columns=[bundle.id_column]).reset_index(drop=True)
    frame = pd.concat([frame.drop(columns=[c for c in score_part.columns if c in frame.columns]), score_part],
                      axis=1)
    observed = pd.to_numeric(frame.get(OBSERVED_COLUMN), errors="coerce")
    frame[OBSERVED_SCORE] = observed.astype(float)
    frame[SURVEYED] = observed.notna().to_numpy(bool)
    frame[P_BOTTOM] = frame[band_column(bundle.bottom_band)]
    if value_column is None:
        frame[VALUE] = 1.0
    else:
        frame[VALUE] = pd.to_numeric(chunk[value_column], errors="coerce").to_numpy(float)
    ids = frame[bundle.id_column].astype(str)
    if previous is None:
        frame[SCORE_DROP] = np.nan
    else:
        frame[SCORE_DROP] = ids.map(previous).to_numpy(float) - frame["expected_score"].to_numpy(float)
    return frame


def _number(value: Any, digits: int = 2) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "missing"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def describe_condition(column: str, value: Any, bottom_band: str) -> str | None:
    """One condition of a matched rule in words, with the customer's value."""
    if column == SURVEYED:
        return None
    if column == OBSERVED_SCORE:
        return f"score {int(value)} in the last survey"
    if column == P_BOTTOM or column == band_column(bottom_band):
        return f"predicted {bottom_band} ({value:.2f})"
    if column == "churn_probability":
        return f"churn risk {value:.2f}"
    if column == VALUE:
        return f"value {_number(value)}"
    if column == SCORE_DROP:
        return f"expected score down {value:.1f} since the last scoring"
    if column == "problem_group":
        return f"{value} problem"
    return f"{column.replace('_', ' ')} {_number(value)}"


def _driver_phrases(drivers: pd.DataFrame, target: str) -> list[str]:
    """Per row, the top drivers that push P(bottom band) up, e.g. 'network quality 41.2, dropped calls 6'."""
    phrases: list[list[str]] = [[] for _ in range(len(drivers))]
    rank = 1
    while f"driver{rank}_{target}_feature" in drivers.columns:
        features = drivers[f"driver{rank}_{target}_feature"].to_numpy(object)
        values = drivers[f"driver{rank}_{target}_value"].to_numpy(object)
        contributions = drivers[f"driver{rank}_{target}_contribution"].to_numpy(float)
        for i in range(len(drivers)):
            if len(phrases[i]) < DRIVERS_IN_REASON and features[i] is not None and contributions[i] > 0:
                phrases[i].append(f"{str(features[i]).replace('_', ' ')} {values[i]}")
        rank += 1
    return [", ".join(p) for p in phrases]


def _cause_phrases(frame: pd.DataFrame, codes: Sequence[str]) -> list[str]:
    if not codes:
        return [""] * len(frame)
    probabilities = frame[[cause_column(c) for c in codes]].to_numpy(float)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :CAUSES_IN_REASON]
    out = []
    for i in range(len(frame)):
        named = [f"{codes[j]} {probabilities[i, j]:.2f}" for j in order[i]
                 if probabilities[i, j] >= MIN_CAUSE_PROBABILITY]
        out.append(f"likely causes: {', '.join(named)}" if named else "")
    return out


def _best_strategies(bundle: ScoringBundle, customers: pd.DataFrame, strategies: Sequence[Strategy],
                     value_column: str | None, threads: int, X: np.ndarray | None = None,
                     scores: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Best strategy id and expected value per customer (None when nothing can be simulated).

    `X` and `scores` (the rows' encoding and score table, already computed by the run) spare the
    simulation a second encoding and a second baseline prediction.
    """
    if not strategies or len(customers) == 0:
        return None
    baseline = None
    if scores is not None:
        wanted = [band_column(b) for b in bundle.band_names] + ["expected_score", "churn_probability"]
        if all(c in scores.columns for c in wanted):
            baseline = {c: scores[c].to_numpy(float) for c in wanted}
    try:
        simulation = simulate_effects(bundle, customers, strategies, value_column=value_column, threads=threads,
                                      X=X, baseline=baseline)
    except SimulationError as err:
        logger.warning("alerts: no strategy suggestions: %s", err)
        return None
    best = best_strategy(simulation, "value").set_index(bundle.id_column)
    return best[["best_strategy", "expected_value"]]


def planned_offers(config: CxConfig, store_url: str) -> pd.DataFrame:
    """customer -> campaign, group, strategy, strategy_name, expected_value of the campaign plans still running.

    A plan is running until results for it reach the campaigns history. A customer in several running
    plans belongs to the latest wave's. A task for a planned customer must carry the plan's decision:
    the planned offer for the treated group, no offer at all for the control group (an offer there would
    spoil the comparison the next round learns from).
    """
    columns = ["campaign", "group", "strategy", "strategy_name", "expected_value"]
    plans = PlanStore(store_url)
    try:
        campaigns = plans.campaigns()
        if not campaigns:
            return pd.DataFrame(columns=columns)
        try:
            history = read_history(config) if config.data.campaigns is not None else pd.DataFrame()
        except CampaignError:  # a SQL history cannot take results: every plan counts as running
            history = pd.DataFrame()
        done = (set(history[CAMPAIGN_COLUMN].dropna().astype(str))
                if not history.empty and CAMPAIGN_COLUMN in history else set())
        frames = [plans.plan(c.name).assign(campaign=c.name) for c in campaigns if c.name not in done]
    finally:
        plans.close()
    if not frames:
        return pd.DataFrame(columns=columns)
    running = pd.concat(frames, ignore_index=True)  # campaigns() is oldest wave first: keep the last
    running["customer"] = running["customer"].astype(str)
    return running.drop_duplicates("customer", keep="last").set_index("customer")[columns]


class _Matcher:
    """Evaluates the rules on one chunk and builds its task rows."""

    def __init__(self, config: CxConfig, bundle: ScoringBundle, setup: AlertSetup, model_version: str,
                 threads: int, active: Mapping[tuple[str, str], str | None] | None = None,
                 planned: pd.DataFrame | None = None):
        self.config, self.bundle, self.setup = config, bundle, setup
        self.planned = planned if planned is not None else pd.DataFrame(
            columns=["campaign", "group", "strategy", "strategy_name", "expected_value"])
        # Pairs that already have a task keep it (TaskStore.sync): explaining and simulating them again
        # would be thrown away, and it is most of the run's cost.
        self.active = active or {}
        self.model_version, self.threads = model_version, threads
        self.explainer = CustomerScorer(bundle, ScoringOptions(uncertainty=False, explain=3,
                                                               explain_targets=(bundle.bottom_band,)), threads)
        self.names = {s.id: s.name or s.id for s in setup.strategies}
        self.codes = list(bundle.cause_boosters)
        self.matched_by_rule = {r.id: 0 for r in setup.rules}
        self.unrouted = 0

    def task_rows(self, frame: pd.DataFrame, chunk: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
        masks = {rule.id: rule_mask(frame, rule) for rule in self.setup.rules}
        any_match = np.logical_or.reduce(list(masks.values())) if masks else np.zeros(len(frame), bool)
        rows = np.flatnonzero(any_match)
        if rows.size == 0:
            return pd.DataFrame(columns=list(TASK_COLUMNS))
        matched = frame.iloc[rows].reset_index(drop=True)
        id_column = self.bundle.id_column
        ids = matched[id_column].astype(str).to_numpy()
        plan_campaign = (self.planned["campaign"].reindex(ids).to_numpy(object) if len(self.planned)
                         else np.full(len(ids), None, object))
        missing = object()
        changed = np.zeros(len(rows), bool)  # a new pair, or one whose task must take a new campaign's decision
        for rule in self.setup.rules:
            hit = masks[rule.id][rows]
            changed |= hit & np.array([(task := self.active.get((i, rule.id), missing)) is missing
                                       or (isinstance(c, str) and task != c)
                                       for i, c in zip(ids, plan_campaign, strict=True)])
        detail = np.flatnonzero(changed)
        drivers = [""] * len(rows)
        causes = [""] * len(rows)
        best = None
        if detail.size:
            for k, phrase in zip(detail, _driver_phrases(self.explainer.top_drivers(X[rows[detail]]),
                                                         self.bundle.bottom_band), strict=True):
                drivers[k] = phrase
            for k, phrase in zip(detail, _cause_phrases(matched.iloc[detail], self.codes), strict=True):
                causes[k] = phrase
            best = _best_strategies(self.bundle, chunk.iloc[rows[detail]].reset_index(drop=True),
                                    self.setup.strategies, self.config.value_column, self.threads,
                                    X[rows[detail]], frame.iloc[rows[detail]].reset_index(drop=True))
        if best is not None:
            strategy = best["best_strategy"].reindex(ids).to_numpy(object)
            expected = best["expected_value"].reindex(ids).to_numpy(float)
        else:
            strategy, expected = np.full(len(ids), None, object), np.full(len(ids), np.nan)
        has_strategy = np.array([isinstance(s, str) and s != NO_STRATEGY for s in strategy], bool)
        names = np.array([self.names.get(s) if h else None for s, h in zip(strategy, has_strategy, strict=True)],
                         object)
        campaign = np.full(len(ids), None, object)
        plan_note = np.full(len(ids), "", object)
        if len(self.planned):
            plan = self.planned.reindex(ids)
            in_plan = plan["campaign"].notna().to_numpy()
            treated = in_plan & (plan["group"] == TREATED).to_numpy()
            control = in_plan & ~treated
            campaign[in_plan] = plan["campaign"].to_numpy(object)[in_plan]
            strategy = np.where(treated, plan["strategy"].to_numpy(object), strategy)
            names = np.where(treated, plan["strategy_name"].to_numpy(object), names)
            expected = np.where(treated, plan["expected_value"].to_numpy(float), expected)
            has_strategy = np.where(control, False, has_strategy | treated)
            plan_note[treated] = [f"planned offer of campaign '{c}'" for c in campaign[treated]]
            plan_note[control] = [f"control group of campaign '{c}': make no offer" for c in campaign[control]]
        parts = []
        position = {r: i for i, r in enumerate(rows)}
        for rule in self.setup.rules:
            hit = np.flatnonzero(masks[rule.id])
            if hit.size == 0:
                continue
            local = np.array([position[r] for r in hit])
            sub = matched.iloc[local]
            owner = (np.full(len(sub), rule.owner, object) if rule.owner is not None
                     else self.setup.owners.route(sub[rule.route_by]))
            routed = np.array([o is not None for o in owner])
            self.unrouted += int((~routed).sum())
            head_values = [sub[c].to_numpy(object) for c in rule.columns]
            reasons = []
            for k, i in enumerate(local):
                head = ", ".join(p for p in (describe_condition(c, v[k], self.bundle.bottom_band)
                                             for c, v in zip(rule.columns, head_values, strict=True)) if p)
                tail = "; ".join(p for p in (drivers[i], causes[i], plan_note[i]) if p)
                reasons.append(f"{head}: {tail}" if tail else head)
            self.matched_by_rule[rule.id] += int(routed.sum())
            part = pd.DataFrame({
                "customer_id": ids[local], "rule_id": rule.id, "level": rule.level, "basis": rule.basis,
                "owner_id": owner, "reason": reasons,
                "strategy_id": np.where(has_strategy[local], strategy[local], None),
                "strategy_name": np.where(has_strategy[local], names[local], None),
                "expected_value": np.where(has_strategy[local], np.round(expected[local], 2), np.nan),
                "p_bottom_band": sub[P_BOTTOM].to_numpy(float),
                "churn_probability": (sub["churn_probability"].to_numpy(float) if "churn_probability" in sub
                                      else np.nan),
                "value": sub[VALUE].to_numpy(float),
                "model_version": self.model_version,
                "campaign": campaign[local],
            })
            parts.append(part[routed])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(TASK_COLUMNS))


def _previous_scores(store: CustomerStore) -> pd.Series | None:
    name = scores_table_name(store.table_name)
    if name not in inspect(store.engine).get_table_names():
        return None
    with store.engine.connect() as conn:
        frame = pd.read_sql_table(name, conn)
    return frame.set_index("customer_id")["expected_score"]


def _write_scores(store: CustomerStore, scores: pd.DataFrame) -> None:
    """Replace the last scoring's snapshot; two runs at once must not trip over each other's DROP/CREATE."""
    name = scores_table_name(store.table_name)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:  # transactional DDL under one lock: the second run waits
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
            scores.to_sql(name, conn, if_exists="replace", index=False, chunksize=20_000)
        return
    for attempt in range(3):  # SQLite runs DDL outside the transaction: retry a lost race
        try:
            with store.engine.begin() as conn:
                scores.to_sql(name, conn, if_exists="replace", index=False, chunksize=20_000)
            return
        except Exception:
            if attempt == 2:
                raise
            time.sleep(1.0)


def run_alerts(
    config: CxConfig, bundle: ScoringBundle, model_version: str, store: CustomerStore, tasks: TaskStore,
    setup: AlertSetup, actor: str, threads: int = 1, chunk_size: int = 50_000,
    on_created: Callable[[TaskStore, str], None] | None = None,
) -> AlertRunReport:
    """Evaluate the rules for every customer of the store and make the open tasks match.

    Args:
        config: the dataset config (value column).
        bundle: the model to score with.
        model_version: written on each task.
        store: the customer store (must be loaded).
        tasks: the task store.
        setup: rules, owners and strategies.
        actor: who is running (written into the task events).
        threads: LightGBM threads.
        chunk_size: customers scored at a time.
        on_created: called with (tasks, run_id) after the sync (webhooks); must not raise.
    Returns:
        What the run found and changed.
    """
    started = time.perf_counter()
    if not store.refresh():
        raise StoreError(store.error or "customer store not loaded")
    columns = store.columns
    for rule in setup.rules:
        if rule.route_by is not None and rule.route_by not in columns:
            raise AlertError(f"{setup.source}: rule '{rule.id}': key 'route_by': unknown column '{rule.route_by}' "
                             f"(not a column of the customer store's table '{store.table_name}')")
    route_values = {r.route_by: store.distinct(r.route_by) for r in setup.rules if r.route_by is not None}
    uses_drop = any(SCORE_DROP in r.columns for r in setup.rules)
    previous = _previous_scores(store) if uses_drop else None
    scorer = CustomerScorer(bundle, ScoringOptions(uncertainty=False), threads)
    matcher = _Matcher(config, bundle, setup, model_version, threads, tasks.active_pairs(),
                       planned_offers(config, store.url))
    parts: list[pd.DataFrame] = []
    snapshot: list[pd.DataFrame] = []
    n_customers = 0
    checked = False
    for chunk in store.iter_customers(chunk_size):
        n_customers += len(chunk)
        chunk = chunk.reset_index(drop=True)
        chunk[bundle.id_column] = chunk[bundle.id_column].astype(str)
        X = bundle.pipeline.transform(chunk)
        scores = scorer.score_matrix(chunk[bundle.id_column].to_numpy(object), X)
        frame = alert_frame(bundle, chunk, scores, config.value_column, previous)
        if not checked:  # the frame's columns are the same in every chunk
            validate_alert_rules(setup.rules, {c: column_kind(frame[c]) for c in frame.columns}, setup.owners,
                                 route_values, setup.source)
            checked = True
        parts.append(matcher.task_rows(frame, chunk, X))
        if uses_drop:
            snapshot.append(pd.DataFrame({"customer_id": frame[bundle.id_column].astype(str),
                                          "expected_score": frame["expected_score"].astype(float)}))
    if not checked:
        raise StoreError(f"customer store table '{store.table_name}' is empty")
    matches = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(TASK_COLUMNS))
    run_id = uuid.uuid4().hex
    report = tasks.sync(matches, actor, run_id)
    if uses_drop:
        _write_scores(store, pd.concat(snapshot, ignore_index=True))
    notes = []
    if matcher.unrouted:
        notes.append(f"{matcher.unrouted} matches not turned into tasks: their routing value is missing and the "
                     f"owners table has no '*' owner")
    if uses_drop and previous is None:
        notes.append("expected_score_drop: no earlier scoring in the store; drops are measured from the next run")
    if on_created is not None:
        on_created(tasks, run_id)
    by_level = matches.groupby("level").size().to_dict() if len(matches) else {}
    return AlertRunReport(report, n_customers, matcher.matched_by_rule, {k: int(v) for k, v in by_level.items()},
                          matcher.unrouted, time.perf_counter() - started, model_version, notes)


def campaign_contact_outcomes(store_url: str, campaign: str, table: str = "customers") -> pd.Series:
    """customer -> outcome of the closed front-line tasks that carried `campaign`'s planned offer.

    `campaign results` (CLI and API) passes this to `append_campaign_results`, so what the front line
    recorded reaches the campaigns history beside the churn and score outcomes.
    """
    tasks = TaskStore(store_url, table)
    try:
        if tasks.tasks.name not in inspect(tasks.engine).get_table_names():
            return pd.Series(dtype=object, name="contact_outcome")
        tasks.create()  # adds the campaign column to a store written before it existed
        return contact_outcomes(tasks.frame(), campaign)
    finally:
        tasks.dispose()


class BackgroundAlerts:
    """Runs the alert rules when the API's champion changes, in a child process (`cxpredict alerts run`).

    A child process rather than a thread: a run over the whole store scores, explains and simulates
    for minutes, and in the server's process it would compete with requests for the GIL and memory.
    The child runs at a lower CPU priority (nice 10); runs are serialised; a failure is logged and
    kept in `last_error`, and the server goes on serving.
    """

    def __init__(self, config_path: Path, store_url: str, table: str, threads: int = 1,
                 lock_dir: Path | None = None):
        self.config_path, self.store_url, self.table, self.threads = config_path, store_url, table, threads
        # With `serve --workers N` every worker sees the champion change: one file lock per store and
        # table (the URL hashed, never written out) lets the first run it and the others skip that
        # version instead of scoring the whole store N times.
        key = hashlib.sha256(f"{store_url}\0{table}".encode()).hexdigest()[:16]
        self.lock_path = (lock_dir or Path(tempfile.gettempdir())) / f"cxpredict-alerts-{key}.lock"
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.last_output: str | None = None
        self.last_error: str | None = None

    def start(self, version: str) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(version,), name="alerts-run", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def command(self, version: str) -> list[str]:
        return [sys.executable, "-m", "cxpredict.cli", "alerts", "run", "--config", str(self.config_path),
                "--model-version", version, "--threads", str(self.threads),
                "--actor", f"model change to v{version} (api)"]

    def _run(self, version: str) -> None:
        with self._lock:
            try:
                handle = self.lock_path.open("a+")
            except OSError as err:  # an unwritable temp folder: run unguarded rather than not at all
                logger.warning("alerts lock %s not usable (%s); running without it", self.lock_path,
                               type(err).__name__)
                self._run_child(version)
                return
            with handle:
                self._run_once(handle, version)

    def _run_once(self, handle: Any, version: str) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits while another worker's run is going on
        handle.seek(0)
        if handle.read().strip() == version:
            logger.info("alerts for v%s already run by another worker; skipped", version)
            return
        if self._run_child(version):
            handle.seek(0)
            handle.truncate()
            handle.write(version)
            handle.flush()

    def _run_child(self, version: str) -> bool:
        """One `alerts run` child; True when it succeeded."""
        try:
            # The store URL goes by environment, never argv: a password in it would show in `ps`.
            env = {**os.environ, "CXPREDICT_STORE_URL": self.store_url, "CXPREDICT_STORE_TABLE": self.table}
            child = subprocess.Popen(self.command(version), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
            # Below the server's priority: requests first (no preexec_fn: the server has threads).
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, child.pid, 10)
            stdout, stderr = child.communicate(timeout=6 * 3600)
        except (OSError, subprocess.TimeoutExpired) as err:
            self.last_error = f"{type(err).__name__}"
            logger.error("alerts run after the model change to v%s did not finish: %s", version, self.last_error)
            return False
        done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
        self.last_output = done.stdout.strip()
        if done.returncode != 0:
            self.last_error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            logger.error("alerts run after the model change to v%s failed: %s", version, self.last_error)
            return False
        self.last_error = None
        logger.info("alerts run after the model change to v%s: %s", version, self.last_output)
        return True

    def wait(self, timeout: float | None = None) -> None:
        for thread in list(self._threads):
            thread.join(timeout)
