"""Drift between training and scored customers: population stability index per feature, unseen categories.

The reference (bin edges and shares of every model input on the training customers) is fitted
at training time and stored in the bundle, so any scoring run can compare against it without
the training data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxpredict.features.build import CATEGORICAL, FeaturePipeline

PSI_BINS = 10
PSI_FLOOR = 1e-4  # empty bins would make the log ratio infinite


def _bin_index(values: np.ndarray, edges: np.ndarray | None, n_bins: int) -> np.ndarray:
    """Bin of each value: numeric by interior edges, categorical by code; missing/unseen is bin `n_bins`."""
    missing = np.isnan(values)
    filled = np.where(missing, 0, values)
    index = filled.astype(int) if edges is None else np.digitize(filled, edges)
    return np.where(missing, n_bins, np.minimum(index, n_bins))


def _shares(index: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(index, minlength=n_bins + 1)[: n_bins + 1].astype(float)
    return counts / max(counts.sum(), 1.0)


def population_stability_index(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI = Σ (c − r)·ln(c / r) over bins (shares floored at 1e-4).

    Args:
        reference: bin shares at training.
        current: bin shares now.
    Returns:
        The index (0 = same distribution; above 0.2 is usually read as a real shift).
    """
    r = np.clip(reference, PSI_FLOOR, None)
    c = np.clip(current, PSI_FLOOR, None)
    return float(((c - r) * np.log(c / r)).sum())


@dataclass
class DriftReference:
    """Training-time distribution of every model input.

    Attributes:
        names: feature names, in the pipeline's order.
        edges: interior bin edges for numeric features (None for categorical ones).
        n_bins: bins per feature, not counting the final missing/unseen bin.
        shares: reference shares per feature (length n_bins + 1).
    """

    names: list[str]
    edges: list[np.ndarray | None] = field(default_factory=list)
    n_bins: list[int] = field(default_factory=list)
    shares: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def fit(cls, pipeline: FeaturePipeline, X: np.ndarray) -> DriftReference:
        """Bin every feature on the training matrix (deciles for numeric, categories for categorical).

        Args:
            pipeline: the fitted feature pipeline.
            X: its encoded training matrix.
        Returns:
            The reference.
        """
        ref = cls(names=list(pipeline.feature_names_))
        for j, spec in enumerate(pipeline.specs_):
            column = X[:, j]
            if spec.kind == CATEGORICAL:
                edges, n_bins = None, len(spec.categories)
            else:
                finite = column[np.isfinite(column)]
                quantiles = np.quantile(finite, np.linspace(0, 1, PSI_BINS + 1)[1:-1]) if len(finite) else []
                edges = np.unique(np.asarray(quantiles, float))
                n_bins = len(edges) + 1
            index = _bin_index(column, edges, n_bins)
            ref.edges.append(edges)
            ref.n_bins.append(n_bins)
            ref.shares.append(_shares(index, n_bins))
        return ref


@dataclass
class DriftCounts:
    """Bin counts of scored rows per feature: they add up over chunks, so a streamed job of any
    size gets the same drift report as scoring all its rows at once.

    Attributes:
        bins: per feature, counts over its reference bins plus the missing/unseen bin.
        unseen: per feature, rows with a categorical value never seen in training.
        rows: rows counted.
    """

    bins: list[np.ndarray]
    unseen: np.ndarray
    rows: int

    def __add__(self, other: DriftCounts) -> DriftCounts:
        return DriftCounts([a + b for a, b in zip(self.bins, other.bins, strict=True)],
                           self.unseen + other.unseen, self.rows + other.rows)

    def to_json(self) -> dict[str, list[int] | list[list[int]] | int]:
        return {"bins": [b.tolist() for b in self.bins], "unseen": self.unseen.tolist(), "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict) -> DriftCounts:
        return cls([np.asarray(b, np.int64) for b in data["bins"]], np.asarray(data["unseen"], np.int64),
                   int(data["rows"]))


def drift_counts(
    reference: DriftReference, pipeline: FeaturePipeline, customers: pd.DataFrame, X: np.ndarray | None = None
) -> DriftCounts:
    """Count scored rows into the reference's bins.

    Args:
        reference: the bundle's training-time reference.
        pipeline: the bundle's feature pipeline.
        customers: the customers being scored (raw rows, for unseen categories).
        X: `pipeline.transform(customers)` when already computed.
    Returns:
        The counts.
    """
    X = pipeline.transform(customers) if X is None else X
    bins, unseen = [], np.zeros(len(pipeline.specs_), np.int64)
    for j, spec in enumerate(pipeline.specs_):
        n_bins = reference.n_bins[j]
        bins.append(np.bincount(_bin_index(X[:, j], reference.edges[j], n_bins), minlength=n_bins + 1)[: n_bins + 1])
        if spec.kind == CATEGORICAL and spec.name in customers.columns and len(customers):
            raw = customers[spec.name]
            unseen[j] = int((raw.notna().to_numpy() & ~raw.astype(str).isin(spec.categories).to_numpy()).sum())
    return DriftCounts(bins, unseen, len(X))


def drift_report_from_counts(reference: DriftReference, pipeline: FeaturePipeline, counts: DriftCounts) -> pd.DataFrame:
    """PSI per feature and, for categorical features, the share of values never seen in training.

    Returns:
        One row per feature: `feature`, `kind`, `psi`, `unseen_share`, sorted by PSI descending.
    """
    rows = []
    for j, spec in enumerate(pipeline.specs_):
        current = counts.bins[j].astype(float) / max(float(counts.bins[j].sum()), 1.0)
        psi = population_stability_index(reference.shares[j], current)
        unseen = float(counts.unseen[j] / counts.rows) if counts.rows else 0.0
        rows.append({"feature": spec.name, "kind": spec.kind, "psi": psi, "unseen_share": unseen})
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)


def drift_report(reference: DriftReference, pipeline: FeaturePipeline, customers: pd.DataFrame) -> pd.DataFrame:
    """PSI per feature and, for categorical features, the share of values never seen in training.

    Args:
        reference: the bundle's training-time reference.
        pipeline: the bundle's feature pipeline.
        customers: the customers being scored (raw rows).
    Returns:
        One row per feature: `feature`, `kind`, `psi`, `unseen_share`, sorted by PSI descending.
    """
    return drift_report_from_counts(reference, pipeline, drift_counts(reference, pipeline, customers))


def drift_warnings(report: pd.DataFrame, psi_warn: float, unseen_warn: float) -> list[str]:
    """Readable warnings for features over the PSI or unseen-category thresholds.

    Args:
        report: `drift_report` output.
        psi_warn: PSI threshold.
        unseen_warn: unseen-category share threshold.
    Returns:
        One message per feature over a threshold (empty when nothing drifted).
    """
    out = []
    for row in report.itertuples(index=False):
        if row.psi > psi_warn:
            out.append(f"feature '{row.feature}' drifted: PSI {row.psi:.3f} > {psi_warn}")
        if row.unseen_share > unseen_warn:
            out.append(f"feature '{row.feature}': {row.unseen_share:.1%} of values never seen in training")
    return out
