"""Metrics on held-out rows: score bands, causes, driver ratings, churn, population figures."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
)

ECE_BINS = 10


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy − confidence| averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def band_metrics(band_probs: np.ndarray, band_true: np.ndarray, prefix: str) -> dict[str, float]:
    """Accuracy, macro-F1, log loss and ECE of band probabilities against observed bands."""
    predicted = band_probs.argmax(axis=1)
    labels = np.arange(band_probs.shape[1])
    clipped = np.clip(band_probs, 1e-12, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return {
        f"{prefix}band_accuracy": float(accuracy_score(band_true, predicted)),
        f"{prefix}macro_f1": float(f1_score(band_true, predicted, labels=labels, average="macro", zero_division=0)),
        f"{prefix}log_loss": float(log_loss(band_true, clipped, labels=labels)),
        f"{prefix}ece": expected_calibration_error(band_probs, band_true),
    }


def safe_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, or NaN when the rows hold one class only."""
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def safe_pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(average_precision_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def expected_score_mae(expected: np.ndarray, observed: np.ndarray) -> float:
    return float(mean_absolute_error(observed, expected))


def index_from_bands(band_true: np.ndarray, top: int, bottom: int, weight: np.ndarray | None = None) -> float:
    """100·(share in top band − share in bottom band), optionally weighted (Hájek estimator)."""
    w = np.ones(len(band_true)) if weight is None else np.asarray(weight, float)
    return float(100.0 * ((w * (band_true == top)).sum() - (w * (band_true == bottom)).sum()) / w.sum())


BOOTSTRAP_MAX_ROWS = 200_000


def bootstrap_mean_interval(
    contributions: np.ndarray, seed: int, reps: int = 500, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean over customers (resampling customers).

    With doubly robust per-customer contributions this covers both who makes up the base and
    the respondents' residuals; it does not cover errors shared by every prediction.
    """
    n = len(contributions)
    alpha = (1 - level) / 2
    if n > BOOTSTRAP_MAX_ROWS:
        # The percentile bootstrap of a mean converges to the normal interval; at this size they
        # differ by less than the bootstrap's own resampling noise, and 500 resamples of millions
        # of rows cost tens of seconds of training.
        half = float(norm.ppf(1 - alpha)) * float(contributions.std(ddof=1)) / np.sqrt(n)
        mean = float(contributions.mean())
        return mean - half, mean + half
    rng = np.random.default_rng(seed)
    stats = np.array([contributions[rng.integers(0, n, n)].mean() for _ in range(reps)])
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def effective_sample_size(weight: np.ndarray) -> float:
    """Kish's effective sample size of weighted rows: (Σw)² / Σw²."""
    return float(weight.sum() ** 2 / (weight**2).sum())


def doubly_robust_contributions(predicted: np.ndarray, observed: np.ndarray, positions: np.ndarray,
                                propensity: np.ndarray | None, floor: float = 1e-3) -> np.ndarray:
    """Per-customer doubly robust (AIPW, Hájek-normalised) contributions to a population mean.

    Every customer contributes the model's prediction; respondents add their inverse-propensity
    weighted residual, scaled so the weights sum to the number of customers. The mean is right
    when either the outcome model or the response model is right.

    Args:
        predicted: the model's prediction for every customer (out-of-fold for respondents).
        observed: the respondents' observed outcome, aligned with `positions`.
        positions: the respondents' rows in `predicted`.
        propensity: the respondents' P(responded) (None: everyone responded; observed replaces predicted).
        floor: propensities are clipped from below here.
    Returns:
        One contribution per customer; their mean is the estimate.
    """
    contributions = np.asarray(predicted, float).copy()
    if len(positions) == 0:
        return contributions
    if propensity is None:
        contributions[positions] = observed
        return contributions
    inverse_p = 1.0 / np.clip(propensity, floor, 1.0)
    scaled = inverse_p * len(contributions) / inverse_p.sum()
    contributions[positions] += scaled * (observed - contributions[positions])
    return contributions
