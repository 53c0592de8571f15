"""Scoring requests: resolve customers (inline or from the store), check them, predict from arrays.

Pure logic over a loaded model and the store, shared by the /v1/scores and /v1/customers routes
(and by simulations, which need the same resolved customer records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.exceptions import RequestValidationError

from cxpredict.models.bundle import band_column, uncertainty_arrays
from cxpredict.models.problems import PROBLEM_GROUP, PROBLEM_LIFT, bundle_problem_columns
from cxpredict.serving.api.errors import UnknownCustomers, field_error
from cxpredict.serving.api.explaining import explain_rows
from cxpredict.serving.api.model import ServingModel
from cxpredict.serving.api.schemas.scores import CustomerInput
from cxpredict.serving.api.store import CustomerStore


@dataclass
class ResolvedCustomers:
    """Customers in request order: their records, encoded matrix, and what the store knows about each."""

    ids: list[str | None]
    records: list[Mapping[str, Any]]
    X: np.ndarray
    from_store: list[bool]
    observed: dict[str, int | None]


def check_count(n: int, max_customers: int, loc: tuple[str, ...] = ("body", "customers")) -> None:
    if n > max_customers:
        raise RequestValidationError([field_error(
            loc, f"at most {max_customers} customers per request, got {n}", "too_long",
        )])


def resolve_customers(
    inputs: Sequence[CustomerInput], model: ServingModel, store: CustomerStore, max_customers: int,
    loc: tuple[str, ...] = ("body", "customers"),
) -> ResolvedCustomers:
    """Check inline features against the model's schema and fetch stored customers by id.

    Raises:
        RequestValidationError: too many customers, or missing / mistyped / implausible features (422).
        UnknownCustomers: ids not in the store (404).
    """
    check_count(len(inputs), max_customers, loc)
    inline = [i for i, item in enumerate(inputs) if item.features is not None]
    X = np.full((len(inputs), len(model.encoder.names)), np.nan)
    if inline:
        X_inline, problems = model.encoder.encode_checked([inputs[i].features or {} for i in inline])
        if problems:
            raise RequestValidationError([
                field_error((*loc, inline[row], "features", name), problem.message, problem.kind)
                for row, by_name in sorted(problems.items()) for name, problem in by_name.items()
            ])
        X[inline] = X_inline
    wanted = list(dict.fromkeys(item.customer_id for item in inputs if item.features is None and item.customer_id))
    found = store.get(wanted) if wanted else {}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise UnknownCustomers(missing)
    observed = store.observed(wanted) if wanted else {}
    records: list[Mapping[str, Any]] = []
    from_store: list[bool] = []
    for item in inputs:
        if item.features is not None:
            records.append(item.features)
            from_store.append(False)
        else:
            records.append(found[str(item.customer_id)])
            from_store.append(True)
    stored = [i for i, flag in enumerate(from_store) if flag]
    if stored:
        X[stored] = model.encoder.encode([records[i] for i in stored])
    return ResolvedCustomers([item.customer_id for item in inputs], records, X, from_store, observed)


def uncertainty_rows(model: ServingModel, X: np.ndarray, predicted: dict[str, np.ndarray]) -> list[dict] | None:
    """Prediction set over the bands and expected-score interval per customer (None for older bundles)."""
    bundle = model.bundle
    names = bundle.band_names
    band_probs = np.column_stack([predicted[band_column(b)] for b in names])
    out = uncertainty_arrays(bundle, X, band_probs, predicted["expected_score"], threads=model.threads)
    if out is None:
        return None
    labels = np.asarray(names, dtype=object)
    propensity = [None if np.isnan(p) else float(p) for p in out["response_propensity"]]
    return [
        {"prediction_set": labels[out["in_set"][i]].tolist(), "set_size": int(out["set_size"][i]),
         "expected_score_low": float(out["expected_low"][i]), "expected_score_high": float(out["expected_high"][i]),
         "low_support": bool(out["low_support"][i]), "response_propensity": propensity[i]}
        for i in range(len(X))
    ]


def check_explain(k: int, explain_max: int) -> None:
    if k > explain_max:
        raise RequestValidationError([field_error(("query", "explain"), f"at most {explain_max} drivers per target",
                                                  "less_than_equal")])


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def score_rows(model: ServingModel, customers: ResolvedCustomers, explain: int = 0) -> list[dict[str, Any]]:
    """One score per customer: the same figures as `cxpredict score`, plus survey facts.

    With `explain` = k > 0, each score also carries the k largest SHAP drivers of the headline
    targets (bottom band, expected score, churn).
    """
    predicted = model.bundle.predict_matrix(customers.X, model.threads)
    problems = bundle_problem_columns(model.bundle, predicted)
    names = list(predicted)
    columns = np.column_stack([predicted[n] for n in names]).tolist() if names else []
    uncertainty = uncertainty_rows(model, customers.X, predicted)
    explanations = explain_rows(model.explainer, customers.X, explain) if explain and model.explainer else None
    rows = []
    for i, customer_id in enumerate(customers.ids):
        stored = customers.from_store[i]
        rows.append({
            "customer_id": customer_id,
            "surveyed": (customer_id in customers.observed) if stored else None,
            "observed_score": customers.observed.get(customer_id) if stored and customer_id else None,
            "model_version": model.version,
            "predictions": dict(zip(names, columns[i], strict=True)),
            "problem_group": str(problems[PROBLEM_GROUP][i]) if problems else None,
            "problem_lift": _finite_or_none(problems[PROBLEM_LIFT][i]) if problems else None,
            "uncertainty": None if uncertainty is None else uncertainty[i],
            "explanations": None if explanations is None else explanations[i],
        })
    return rows
