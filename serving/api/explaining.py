"""Per-customer explanations for the API: the top-k SHAP drivers of each headline target.

The SHAP values are models/explain.py's (exact TreeSHAP, additive in each target's space), the
same the batch `cxpredict score --explain k` writes; this module only picks the k largest per
customer and words the customer's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxpredict.models.explain import DriverExplainer, Explanation, default_targets, format_values, resolve_targets


def warm_up(explainer: DriverExplainer, n_features: int) -> None:
    """Fit the TreeSHAP engines of the default targets now, not on the first request."""
    bundle = explainer.bundle
    explainer.explain_matrix(np.full((1, n_features), np.nan), resolve_targets(bundle, default_targets(bundle)))


def top_contributions(explanation: Explanation, k: int, categories: dict[str, tuple[str, ...]]) -> list[list[dict]]:
    """For each row: the k features with the largest |contribution|, largest first."""
    values = explanation.values
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    out = []
    for i in range(len(values)):
        row = []
        for j in order[i]:
            feature = explanation.feature_names[j]
            text = format_values(explanation.matrix[i:i + 1, j], explanation.kinds[j], categories.get(feature, ()))[0]
            row.append({"feature": feature, "value": None if text == "missing" else str(text),
                        "contribution": float(values[i, j])})
        out.append(row)
    return out


def explain_rows(explainer: DriverExplainer, X: np.ndarray, k: int) -> list[dict[str, Any]]:
    """Per row, per default target (bottom band, expected score, churn): space, base and top-k drivers."""
    bundle = explainer.bundle
    targets = resolve_targets(bundle, default_targets(bundle))
    explained = explainer.explain_matrix(X, targets)
    categories = {s.name: s.categories for s in bundle.pipeline.specs_}
    per_target = {t.name: top_contributions(explained[t.name], k, categories) for t in targets}
    return [
        {t.name: {"space": t.space, "explains": t.output_column, "base": explained[t.name].base,
                  "contributions": per_target[t.name][i]} for t in targets}
        for i in range(len(X))
    ]
