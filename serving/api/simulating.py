"""Simulation requests: resolved customers × catalogue strategies through models/simulate.py.

The logic (eligibility, interventions, re-scoring, learned effects, ranking, summary) is the one
the batch `cxpredict simulate` uses; this module turns request customers into the frame it reads
and its tables into per-customer rankings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from fastapi.exceptions import RequestValidationError

from cxpredict.features.strategies import Strategy
from cxpredict.models.simulate import ALL_SEGMENTS, best_strategy, objective_gain, segment_table, simulate_effects
from cxpredict.serving.api.errors import field_error
from cxpredict.serving.api.model import ServingModel
from cxpredict.serving.api.scoring import ResolvedCustomers

_EFFECT_FIELDS = {
    "strategy": "strategy", "method": "method", "churn_method": "churn_method", "score_method": "score_method",
    "cost": "cost",
    "churn_probability": "churn_strategy", "delta_churn": "delta_churn",
    "delta_churn_simulated": "delta_churn_simulated", "expected_score": "expected_score_strategy",
    "delta_expected_score": "delta_expected_score", "p_top_band": "p_top_strategy",
    "delta_p_top_band": "delta_p_top", "expected_value": "expected_value", "gain": "gain",
}


def choose_strategies(catalogue: Sequence[Strategy], wanted: Sequence[str] | None) -> list[Strategy]:
    """The requested strategies in request order (the whole catalogue when None); unknown ids are a 422."""
    if wanted is None:
        return list(catalogue)
    by_id = {s.id: s for s in catalogue}
    errors = [field_error(("body", "strategies", i), f"unknown strategy id; the catalogue has {sorted(by_id)}",
                          "unknown_strategy")
              for i, sid in enumerate(wanted) if sid not in by_id]
    if errors:
        raise RequestValidationError(errors)
    return [by_id[sid] for sid in dict.fromkeys(wanted)]


def customers_frame(customers: ResolvedCustomers, id_column: str, value_column: str | None) -> pd.DataFrame:
    """The request's customers as rows keyed by their position (ids may repeat or be absent)."""
    frame = pd.DataFrame([dict(r) for r in customers.records])
    frame[id_column] = [str(i) for i in range(len(frame))]
    if value_column is not None and value_column not in frame.columns:
        frame[value_column] = np.nan
    return frame


def simulate_request(
    model: ServingModel, customers: ResolvedCustomers, strategies: list[Strategy], objective: str,
    value_column: str | None, use_learned: bool,
) -> dict[str, Any]:
    """Rank the strategies for every customer of a request and summarise them per strategy."""
    bundle = model.bundle
    frame = customers_frame(customers, bundle.id_column, value_column)
    if value_column is not None and pd.to_numeric(frame[value_column], errors="coerce").isna().all():
        if objective == "value":
            raise RequestValidationError([field_error(
                ("body", "customers", 0, "features", value_column),
                f"ranking by value needs '{value_column}' for at least one customer (or objective churn / score)",
                "missing",
            )])
        value_column = None
    simulation = simulate_effects(bundle, frame, strategies, value_column=value_column, use_learned=use_learned,
                                  threads=model.threads)
    effects = simulation.effects.assign(gain=objective_gain(simulation.effects, objective))
    effects = effects.sort_values([bundle.id_column, "gain"], ascending=[True, False], kind="stable")
    by_customer = {key: rows for key, rows in effects.groupby(bundle.id_column, sort=False)}
    best = best_strategy(simulation, objective).set_index(bundle.id_column)["best_strategy"]
    baseline = simulation.baseline.set_index(bundle.id_column)
    rows = []
    for position, customer_id in enumerate(customers.ids):
        key = str(position)
        base = baseline.loc[key]
        ranked = by_customer.get(key)
        rows.append({
            "customer_id": customer_id,
            "value": float(base["value"]),
            "baseline": {"churn_probability": base["churn_baseline"], "expected_score": base["expected_score_baseline"],
                         "p_top_band": base["p_top_baseline"]},
            "best_strategy": best[key],
            "strategies": [] if ranked is None else [
                {field: row[column] for field, column in _EFFECT_FIELDS.items()}
                for row in ranked.to_dict("records")
            ],
        })
    summary = segment_table(simulation, objective)
    summary = summary[summary["segment"] == ALL_SEGMENTS].drop(columns=["segment"])
    return {
        "model_name": model.loaded.model_name, "model_version": model.version, "objective": objective,
        "top_band": bundle.top_band, "notes": list(simulation.notes), "customers": rows,
        "summary": summary.to_dict("records"),
    }
