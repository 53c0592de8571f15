"""What each console page shows, as plain data: named tables (the HTML and the CSV download share them) and charts.

Every builder reads what the API routes read (the served model, the customer store, the latest
`cxpredict explain` run of the served version), so a page and the JSON API never disagree. Costly
figures over the whole store (the predicted band mix, the strategy ranking by segment) are computed
once per served model version and kept in `ConsoleCache`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from fastapi.exceptions import RequestValidationError

from cxpredict.features.config import ConfigError, CxConfig
from cxpredict.features.strategies import Strategy
from cxpredict.models.bundle import band_column, cause_column, driver_column
from cxpredict.models.key_drivers import QUADRANT_MEANING
from cxpredict.models.simulate import segment_table, simulate_effects
from cxpredict.serving.api.driver_catalogue import SURVEY_TREND_FILE, DriversNotFound
from cxpredict.serving.api.model import ServingModel
from cxpredict.serving.api.schemas.scores import CustomerInput
from cxpredict.serving.api.scoring import resolve_customers, score_rows
from cxpredict.serving.api.store import CustomerStore
from cxpredict.serving.api.tasks import TaskStore

STRATEGY_SAMPLE = 500  # silent customers of the alert list simulated for the Strategies page
WATERFALL_FEATURES = 8
TASK_COLUMNS_SHOWN = ("task_id", "level", "owner_id", "customer_id", "reason", "strategy_name", "expected_value",
                      "campaign", "state", "created_at")
TASK_LABELS = {"owner_id": "owner", "strategy_name": "suggested offer", "created_at": "created"}
AUC_MEANING = (
    "how well the customers' operational data tells respondents from silent customers: 0.5 means respondents "
    "look like everyone else; the further above 0.5, the less the survey alone represents the base, which the "
    "model corrects with propensity weights"
)


@dataclass(frozen=True)
class Table:
    """A table as shown: column keys, their display labels, rows, and how to format each column."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    labels: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)  # column -> "pct" | "num" | "int" | "signed"

    def label(self, column: str) -> str:
        return self.labels.get(column, column.replace("_", " "))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows), columns=list(self.columns))


@dataclass(frozen=True)
class Page:
    """One page's data: its tables by name, chart data (JSON-ready) and free facts for the template."""

    tables: dict[str, Table] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class ConsoleCache:
    """Figures computed once per served model version (a swap brings new ones)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, version: str, name: str, compute: Callable[[], Any]) -> Any:
        key = (version, name)
        with self._lock:  # one computation at a time: eight clients must not score the store eight times
            if key not in self._values:
                self._values = {k: v for k, v in self._values.items() if k[0] == version}
                self._values[key] = compute()
            return self._values[key]


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def table_of(name: str, title: str, frame: pd.DataFrame, labels: dict[str, str] | None = None,
             formats: dict[str, str] | None = None) -> Table:
    rows = tuple({k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records"))
    return Table(name, title, tuple(str(c) for c in frame.columns), rows, labels or {}, formats or {})


def display(config: CxConfig, column: str) -> str:
    """A column's business label: the config's `display_names`, else the name in words."""
    return config.display_names.get(column, column.replace("_", " "))


def _band_mix(model: ServingModel, store: CustomerStore, config: CxConfig) -> pd.DataFrame:
    bundle = model.bundle
    observed = store.observed_scores()
    bands = observed.astype(int).map(config.score.band_of) if len(observed) else pd.Series(dtype=str)
    sums = dict.fromkeys(bundle.band_names, 0.0)
    n_silent = 0
    for chunk in store.iter_silent():
        predicted = bundle.predict_matrix(bundle.pipeline.transform(chunk), model.threads)
        n_silent += len(chunk)
        for band in bundle.band_names:
            sums[band] += float(np.sum(predicted[band_column(band)]))
    frame = pd.DataFrame({
        "band": bundle.band_names,
        "surveyed_observed": [float((bands == b).mean()) if len(bands) else np.nan for b in bundle.band_names],
        "silent_predicted": [sums[b] / n_silent if n_silent else np.nan for b in bundle.band_names],
    })
    frame.attrs.update(n_surveyed=int(len(observed)), n_silent=n_silent)
    return frame


def _trained_at(config: CxConfig, model: ServingModel) -> str | None:
    try:
        client = mlflow.MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
        version = client.get_model_version(model.loaded.model_name, model.version)
        return datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except Exception:  # an unreachable registry must not take the overview down; the page says "unknown"
        return None


def overview_page(model: ServingModel, store: CustomerStore, config: CxConfig, cache: ConsoleCache) -> Page:
    """Population score and interval, band mix surveyed vs predicted, survey trend, adversarial AUC, model."""
    bundle = model.bundle
    metrics = bundle.metadata.get("metrics", {})
    mix = cache.get(model.version, "band_mix", lambda: _band_mix(model, store, config))
    labels = {"surveyed_observed": "surveyed (observed)", "silent_predicted": "silent (predicted)"}
    tables = {"band_mix": table_of("band_mix", "Band mix: surveyed vs predicted silent customers", mix, labels,
                                   {"surveyed_observed": "pct", "silent_predicted": "pct"})}
    charts: dict[str, Any] = {"band_mix": {"labels": list(mix["band"]), "series": {
        "surveyed (observed)": [_clean(100 * v) for v in mix["surveyed_observed"]],
        "silent (predicted)": [_clean(100 * v) for v in mix["silent_predicted"]]}}}
    trend_note = None
    assert model.drivers is not None
    try:
        trend = model.drivers.artifact(None, SURVEY_TREND_FILE).table
        tables["trend"] = table_of("trend", "Observed score by survey wave (month)", trend,
                                   {"observed_index": "observed score"},
                                   {c: "pct" for c in trend.columns if c.startswith("share_")} | {
                                       "observed_index": "signed"})
        charts["trend"] = {"labels": [str(w) for w in trend["wave"]],
                           "values": [_clean(v) for v in trend["observed_index"]]}
    except DriversNotFound as err:
        trend_note = str(err)
    facts = {
        "model_name": model.loaded.model_name, "model_version": model.version, "run_id": model.loaded.run_id,
        "loaded_at": model.loaded_at.strftime("%Y-%m-%d %H:%M UTC"),
        "trained_at": cache.get(model.version, "trained_at", lambda: _trained_at(config, model)),
        "population_index": metrics.get("population_index"), "ci_low": metrics.get("population_index_ci_low"),
        "ci_high": metrics.get("population_index_ci_high"), "top_band": bundle.top_band,
        "bottom_band": bundle.bottom_band, "adversarial_auc": metrics.get("propensity_adversarial_auc"),
        "auc_meaning": AUC_MEANING, "n_surveyed": mix.attrs.get("n_surveyed", 0),
        "n_silent": mix.attrs.get("n_silent", 0), "trend_note": trend_note,
    }
    return Page(tables, charts, facts)


def _shap_drivers(model: ServingModel, config: CxConfig, target: str, segment: str | None,
                  segment_value: str | None) -> tuple[Table | None, str | None, list[str]]:
    assert model.drivers is not None
    try:
        tables = model.drivers.get(segment)
    except DriversNotFound as err:
        return None, str(err), []
    table = tables.table[tables.table["target"] == target]
    values: list[str] = []
    chosen: str | None = None
    if segment is not None:
        values = sorted(table["segment"].astype(str).unique())
        chosen = segment_value if segment_value in values else values[0]
        table = table[table["segment"].astype(str) == chosen]
    table = table.assign(label=[display(config, f) for f in table["feature"]])
    frame = table[["rank", "label", "feature", "share", "mean_abs_shap", "direction"]]
    title = f"What moves {target}" + (f" in {segment} = {chosen}" if segment else "")
    return table_of("drivers", title, frame, {"label": "driver", "share": "share of total |SHAP|",
                                               "mean_abs_shap": "mean |SHAP|"},
                    {"share": "pct", "mean_abs_shap": "num"}), None, values


def _key_drivers(model: ServingModel, config: CxConfig, segment: str | None,
                 segment_value: str | None) -> tuple[Table | None, str | None]:
    assert model.drivers is not None
    try:
        table = model.drivers.key_drivers(segment).table
    except DriversNotFound as err:
        return None, str(err)
    wanted = segment_value if segment and segment_value in set(table["segment"].astype(str)) else "all"
    table = table[table["segment"].astype(str) == wanted].sort_values("rank")
    table = table.assign(label=[display(config, a) for a in table["attribute"]])
    frame = table[["rank", "label", "attribute", "importance", "importance_low", "importance_high", "performance",
                   "quadrant", "respondents"]]
    return table_of("key_drivers", f"Key drivers of {config.score.column} (segment: {wanted})", frame,
                    {"label": "attribute", "attribute": "column", "importance_low": "importance (2.5 %)",
                     "importance_high": "importance (97.5 %)", "performance": "performance (mean rating)"},
                    {"importance": "pct", "importance_low": "pct", "importance_high": "pct",
                     "performance": "num"}), None


def waterfall(model: ServingModel, store: CustomerStore, customer_id: str, target: str) -> dict[str, Any]:
    """One customer's SHAP waterfall for one target: base, the largest contributions, the prediction."""
    customers = resolve_customers([CustomerInput(customer_id=customer_id)], model, store, 1, loc=("query",))
    explained = score_rows(model, customers, WATERFALL_FEATURES)[0]["explanations"][target]
    contributions = explained["contributions"]
    return {"customer_id": customer_id, "target": target, "space": explained["space"], "base": explained["base"],
            "steps": [{"feature": c["feature"], "value": c["value"], "contribution": c["contribution"]}
                      for c in contributions]}


def drivers_page(model: ServingModel, store: CustomerStore, config: CxConfig, target: str | None,
                 segment: str | None, segment_value: str | None, customer_id: str | None) -> Page:
    """SHAP drivers (global or per segment) in words and percentages, the key-driver chart, a waterfall."""
    bundle = model.bundle
    target = target or bundle.bottom_band
    assert model.drivers is not None
    segment_columns = model.drivers.segment_columns()
    shap_table, shap_note, values = _shap_drivers(model, config, target, segment, segment_value)
    if segment is not None and values and segment_value not in values:
        segment_value = values[0]  # the SHAP table's first segment: both charts show the same one
    key_table, key_note = _key_drivers(model, config, segment, segment_value)
    tables = {t.name: t for t in (shap_table, key_table) if t is not None}
    charts: dict[str, Any] = {}
    if shap_table is not None:
        charts["drivers"] = {"labels": [r["label"] for r in shap_table.rows[:12]],
                             "values": [100 * r["share"] for r in shap_table.rows[:12]]}
    if key_table is not None:
        charts["key_drivers"] = {"points": [
            {"label": r["label"], "x": r["performance"], "y": 100 * r["importance"], "quadrant": r["quadrant"]}
            for r in key_table.rows]}
    facts: dict[str, Any] = {"target": target, "segment": segment, "segment_value": segment_value,
        "segment_values": values, "segment_columns": segment_columns,
        "targets": _targets(model), "shap_note": shap_note, "key_note": key_note, "quadrants": QUADRANT_MEANING,
        "customer_id": customer_id, "top_sentence": _top_sentence(shap_table, target)}
    if customer_id:
        wf_target = target if target in ("churn", "expected_score", bundle.bottom_band) else bundle.bottom_band
        chart = waterfall(model, store, customer_id, wf_target)
        charts["waterfall"] = chart
        tables["waterfall"] = table_of("waterfall", f"Why {customer_id}: {wf_target} ({chart['space']})",
                                       pd.DataFrame(chart["steps"]), formats={"contribution": "signed"})
    return Page(tables, charts, facts)


def _targets(model: ServingModel) -> list[str]:
    from cxpredict.models.explain import available_targets

    return [t.name for t in available_targets(model.bundle)]


def _top_sentence(table: Table | None, target: str) -> str | None:
    if table is None or not table.rows:
        return None
    top = table.rows[:3]
    parts = [f"{r['label']} ({100 * r['share']:.0f} %, {r['direction']})" for r in top]
    return f"The three strongest drivers of {target}: " + "; ".join(parts) + "."


def customer_page(model: ServingModel, store: CustomerStore, config: CxConfig, customer_id: str,
                  strategies: list[Strategy] | None) -> Page:
    """A customer's profile: operational columns, last survey answer, predictions and (with simulate) best offer."""
    customers = resolve_customers([CustomerInput(customer_id=customer_id)], model, store, 1, loc=("query", "id"))
    scored = score_rows(model, customers, 0)[0]
    predictions = scored["predictions"]
    bundle = model.bundle
    record = dict(customers.records[0])
    profile = pd.DataFrame({"column": [display(config, k) for k in record],
                            "value": [None if v is None else str(v) for v in record.values()]})
    tables = {"profile": table_of("profile", "Operational data", profile)}
    probabilities = {b: predictions[band_column(b)] for b in bundle.band_names}
    bands = pd.DataFrame({"band": list(probabilities), "probability": list(probabilities.values())})
    tables["bands"] = table_of("bands", "Predicted band probabilities", bands, formats={"probability": "pct"})
    causes = {c: predictions[cause_column(c)] for c in bundle.cause_boosters if cause_column(c) in predictions}
    if causes:
        frame = pd.DataFrame({"cause": list(causes), "probability": list(causes.values())})
        tables["causes"] = table_of("causes", "Likely causes of dissatisfaction",
                                    frame.sort_values("probability", ascending=False),
                                    formats={"probability": "pct"})
    ratings = {d: predictions[driver_column(d)] for d in bundle.driver_boosters if driver_column(d) in predictions}
    if ratings:
        frame = pd.DataFrame({"driver": [display(config, d) for d in ratings],
                              "predicted_rating": list(ratings.values())})
        tables["ratings"] = table_of("ratings", "Predicted driver ratings", frame, formats={"predicted_rating": "num"})
    facts: dict[str, Any] = {"customer_id": customer_id, "surveyed": scored["surveyed"],
                             "observed": scored["observed_score"],
                             "predicted_band": max(probabilities, key=lambda b: probabilities[b]),
                             "expected_score": predictions.get("expected_score"),
                             "churn": predictions.get("churn_probability"), "offer": None,
                             "problem_group": scored.get("problem_group"), "problem_lift": scored.get("problem_lift")}
    if strategies is not None and strategies:
        from cxpredict.serving.api.simulating import simulate_request

        try:
            result = simulate_request(model, customers, strategies, "value", config.value_column, True)
        except (ConfigError, RequestValidationError) as err:  # no churn model, no value: the page says why
            facts["offer_note"] = str(err) if isinstance(err, ConfigError) else "this customer has no value to rank by"
            return Page(tables, {}, facts)
        row = result["customers"][0]
        ranked = row["strategies"]
        if ranked:
            best = ranked[0]
            facts["offer"] = {"strategy": row["best_strategy"], "method": best.get("method"),
                              "expected_value": best.get("expected_value"), "delta_churn": best.get("delta_churn")}
            offers = pd.DataFrame(ranked)[["strategy", "method", "cost", "delta_churn", "delta_expected_score",
                                           "expected_value"]]
            tables["offers"] = table_of("offers", "Offers ranked by expected value", offers,
                                        {"delta_churn": "Δ P(churn)", "delta_expected_score": "Δ expected score"},
                                        {"cost": "num", "delta_churn": "signed", "delta_expected_score": "signed",
                                         "expected_value": "num"})
    return Page(tables, {}, facts)


def alerts_page(model: ServingModel, limit: int) -> Page:
    """The silent customers to call first (risk × value) with their top causes."""
    if model.alerts is None:
        return Page(facts={"note": "alerts need the customer store; run `cxpredict store load` and reload"})
    rows = model.alerts.top(limit)
    codes = list(model.bundle.cause_boosters)
    frame = rows[["customer_id", "priority", "risk", "p_bottom_band", "churn_probability", "value"]].copy()
    if codes:
        top = rows[[cause_column(c) for c in codes]].to_numpy()
        frame["top_cause"] = [codes[int(np.argmax(r))] for r in top]
    table = table_of("alerts", f"{len(frame)} silent customers to call first (of {model.alerts.n_silent:,})", frame,
                     {"p_bottom_band": f"P({model.bundle.bottom_band})", "churn_probability": "P(churn)"},
                     {"priority": "num", "risk": "pct", "p_bottom_band": "pct", "churn_probability": "pct",
                      "value": "num"})
    return Page({"alerts": table}, {}, {"computed_at": model.alerts.computed_at.strftime("%Y-%m-%d %H:%M UTC")})


def _strategy_ranking(model: ServingModel, store: CustomerStore, config: CxConfig,
                      strategies: list[Strategy], segment: str | None) -> pd.DataFrame:
    assert model.alerts is not None
    ids = model.alerts.top(STRATEGY_SAMPLE)["customer_id"].tolist()
    records = store.get(ids)
    frame = pd.DataFrame([records[i] for i in ids if i in records])
    simulation = simulate_effects(model.bundle, frame, strategies, value_column=config.value_column,
                                  segment_column=segment, use_learned=True, threads=model.threads)
    table = segment_table(simulation, "value")
    return table[table["strategy"] != "none"] if "strategy" in table else table


def strategies_page(model: ServingModel, store: CustomerStore, config: CxConfig, strategies: list[Strategy],
                    may_simulate: bool, cache: ConsoleCache) -> Page:
    """The offer catalogue, and (with the simulate scope) offers ranked by segment with their `method`."""
    catalogue = pd.DataFrame([{"id": s.id, "name": s.name, "cost": s.cost,
                               "eligible": "; ".join(f"{r.column} {r.op} {r.value}" for r in s.eligible) or "everyone",
                               "apply": ", ".join(s.apply)} for s in strategies])
    tables = {"catalogue": table_of("catalogue", "Strategy catalogue", catalogue, formats={"cost": "num"})}
    facts: dict[str, Any] = {"may_simulate": may_simulate, "note": None}
    if not strategies:
        facts["note"] = "the config names no strategy catalogue (`strategies:`)"
    elif model.catalogue_error is not None:
        facts["note"] = model.catalogue_error
    elif may_simulate and model.alerts is not None:
        segment = "segment" if "segment" in store.columns else None
        try:
            ranking = cache.get(model.version, f"strategies:{segment}",
                                lambda: _strategy_ranking(model, store, config, strategies, segment))
        except ConfigError as err:  # e.g. a model without churn cannot rank retention offers
            facts["note"] = f"offers cannot be ranked with this model: {err}"
            return Page(tables, {}, facts)
        columns = [c for c in ("segment", "strategy", "method", "n_eligible", "delta_churn", "delta_expected_score",
                               "expected_total_value", "n_best") if c in ranking.columns]
        tables["by_segment"] = table_of(
            "by_segment", f"Offers by segment over the {STRATEGY_SAMPLE} silent customers first in the alert list",
            ranking[columns].sort_values(["segment", "expected_total_value"], ascending=[True, False]),
            {"delta_churn": "Δ P(churn)", "delta_expected_score": "Δ expected score", "n_best": "best offer for"},
            {"delta_churn": "signed", "delta_expected_score": "signed", "expected_total_value": "num"})
    return Page(tables, {}, facts)


def _task_frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=list(columns))
    for column in ("created_at", "closed_at"):
        if column in frame and len(frame):
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    return frame.astype(object).where(frame.notna(), None)


def tasks_tables(tasks: TaskStore, owner: str | None, limit: int) -> dict[str, Table]:
    """The task sections of the Alerts & tasks page: open tasks by level and owner, and the most urgent ones.

    Args:
        tasks: the task store.
        owner: only this owner's tasks (a key restricted to an owner never sees the others').
        limit: how many urgent tasks to list.
    """
    summary = pd.DataFrame(tasks.open_summary(), columns=["level", "owner_id", "n", "oldest"])
    if owner is not None:
        summary = summary[summary["owner_id"] == owner]
    now = datetime.now(UTC)
    summary["oldest_days"] = [(now - pd.Timestamp(t).tz_localize(UTC) if pd.Timestamp(t).tzinfo is None
                               else now - pd.Timestamp(t)).total_seconds() / 86400 for t in summary["oldest"]]
    order = {"critical": 0, "high": 1, "medium": 2}
    summary = summary.sort_values(["level", "n"], key=lambda c: c.map(order) if c.name == "level" else -c)
    by_owner = table_of("tasks_by_owner", f"{int(summary['n'].sum()):,} tasks not closed, by level and owner",
                        summary[["level", "owner_id", "n", "oldest_days"]],
                        {"owner_id": "owner", "n": "tasks", "oldest_days": "oldest (days)"},
                        {"n": "int", "oldest_days": "num"})
    urgent = _task_frame(tasks.most_urgent(limit, owner), TASK_COLUMNS_SHOWN)
    listed = table_of("tasks", f"The {len(urgent)} most urgent tasks (critical first, then expected value)", urgent,
                      TASK_LABELS, {"expected_value": "num", "task_id": "int"})
    return {"tasks_by_owner": by_owner, "tasks": listed}


def customer_tasks_table(tasks: TaskStore, customer_id: str, owner: str | None) -> Table:
    """Every task of one customer, newest first, with its outcome."""
    columns = ("task_id", "rule_id", "level", "owner_id", "state", "outcome", "reason", "strategy_name",
               "campaign", "created_at", "closed_at")
    frame = _task_frame(tasks.for_customer(customer_id, owner), columns)
    return table_of("tasks", f"Tasks ({len(frame)})", frame, {**TASK_LABELS, "rule_id": "rule", "closed_at": "closed"},
                    {"task_id": "int"})
