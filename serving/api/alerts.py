"""Detractor and churn alerts: silent customers ranked by risk × value, with their most likely causes.

risk     = max(P(bottom band), P(churn))   (P(bottom band) alone when the bundle has no churn model)
priority = risk × value                     (value from `value_column`; 1 when the config has none,
                                             0 when a customer's value is missing)

A customer counts once however they are at risk (unhappy or leaving), and a call centre works
down the list from the customers it would hurt most to lose. The list is computed once per loaded
model over every silent customer (streamed in chunks) and only the top `pool` are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cxpredict.models.bundle import ScoringBundle, band_column, cause_column
from cxpredict.serving.api.store import CustomerStore

RISK_DEFINITION = "risk = max(P(bottom band), P(churn)); priority = risk × value"
TOP_CAUSES = 3


@dataclass
class AlertList:
    """The ranked pool of silent customers (highest priority first)."""

    table: pd.DataFrame
    n_silent: int
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str | None = None

    def top(self, limit: int, min_value: float | None = None) -> pd.DataFrame:
        rows = self.table
        if min_value is not None:
            rows = rows[rows["value"] >= min_value]
        return rows.head(limit)


def alert_frame(bundle: ScoringBundle, ids: np.ndarray, X: np.ndarray, value: np.ndarray,
                threads: int = 1) -> pd.DataFrame:
    """Risk, priority and cause probabilities of some customers (unsorted)."""
    predicted = bundle.predict_matrix(X, threads)
    p_bottom = predicted[band_column(bundle.bottom_band)]
    churn = predicted.get("churn_probability")
    risk = p_bottom if churn is None else np.maximum(p_bottom, churn)
    value = np.nan_to_num(np.asarray(value, float), nan=0.0)
    frame = pd.DataFrame({
        "customer_id": ids.astype(str),
        "priority": risk * value,
        "risk": risk,
        "p_bottom_band": p_bottom,
        "churn_probability": np.full(len(ids), np.nan) if churn is None else churn,
        "expected_score": predicted["expected_score"],
        "value": value,
    })
    for code in bundle.cause_boosters:
        frame[cause_column(code)] = predicted[cause_column(code)]
    return frame


def rank_alerts(
    bundle: ScoringBundle, store: CustomerStore, value_column: str | None, pool: int,
    threads: int = 1, chunk_size: int = 50_000,
) -> AlertList:
    """Score every silent customer of the store and keep the `pool` with the highest priority.

    Args:
        bundle: the model to score with.
        store: the customer store (respondents are excluded).
        value_column: per-customer value column of the customers table, or None (value 1).
        pool: how many to keep.
        threads: LightGBM threads.
        chunk_size: rows read from the store at a time.
    Returns:
        The ranked pool and how many silent customers were scored.
    """
    kept: pd.DataFrame | None = None
    n_silent = 0
    for chunk in store.iter_silent(chunk_size):
        n_silent += len(chunk)
        if value_column is None:
            value = np.ones(len(chunk))
        else:
            value = pd.to_numeric(chunk[value_column], errors="coerce").to_numpy(float)
        frame = alert_frame(bundle, chunk[store.id_column].to_numpy(), bundle.pipeline.transform(chunk), value,
                            threads)
        kept = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        # Ties broken by id so the list does not depend on the chunk order.
        kept = kept.sort_values(["priority", "customer_id"], ascending=[False, True], kind="stable").head(pool)
    if kept is None:
        kept = alert_frame(bundle, np.array([], dtype=object), np.empty((0, len(bundle.pipeline.specs_))),
                           np.empty(0), threads)
    return AlertList(kept.reset_index(drop=True), n_silent)


def top_causes(row: Mapping[str, Any], codes: list[str], k: int = TOP_CAUSES) -> list[tuple[str, float]]:
    """The k most likely causes of one alert row, most likely first."""
    pairs = [(code, float(row[cause_column(code)])) for code in codes]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:k]
