"""Key-driver analysis of the survey's rated attributes: importance (Shapley share of R²) × performance.

Which driver to fix first: for each rated attribute (network, price, support...), its importance
for the score is its Shapley share of the R² of a linear regression of the score on all the
attributes, computed on respondents (the exact average over every subset of the others, the
decomposition that does not depend on the order attributes enter and that survives correlated
ratings, unlike standardised coefficients); its performance is the mean rating. The two split
the attributes into quadrants around their averages:

    importance above average, performance below  -> "fix first"
    importance above average, performance above  -> "maintain"
    importance below average, performance below  -> "lower priority"
    importance below average, performance above  -> "over-invested"

Intervals are percentile bootstraps over respondents. R² of every subset comes from the
correlation matrix (R²(S) = r_Sᵀ R_SS⁻¹ r_S), so 2^p small solves replace 2^p regressions; with
the attribute cap below this stays well under a second per bootstrap draw at any sample size.
Pure logic over a DataFrame: `cxpredict explain`, the report, the API and the console all read
the table this returns (the explain run logs it), so they show the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd

# 2^p subsets per bootstrap draw: 12 ratings cost ~4,000 small solves a draw; a questionnaire with more rated
# attributes than that needs grouping before a key-driver chart means anything.
MAX_ATTRIBUTES = 12
MIN_RESPONDENTS = 30
DEFAULT_BOOTSTRAP = 200
ALL_SEGMENTS = "all"
FIX_FIRST, MAINTAIN, LOWER_PRIORITY, OVER_INVESTED = "fix first", "maintain", "lower priority", "over-invested"
QUADRANT_MEANING = {
    FIX_FIRST: "matters more than average and rated below average: improve these first",
    MAINTAIN: "matters more than average and rated above average: keep it up",
    LOWER_PRIORITY: "matters less than average and rated below average: watch, do not lead with it",
    OVER_INVESTED: "matters less than average and rated above average: effort here moves the score least",
}
COLUMNS = ("segment", "attribute", "rank", "importance", "importance_low", "importance_high", "r2_contribution",
           "performance", "performance_low", "performance_high", "quadrant", "respondents", "r2")


class KeyDriverError(ValueError):
    """The respondents cannot support a key-driver analysis (too few, constant rating, unknown column)."""


@dataclass(frozen=True)
class KeyDriverAnalysis:
    """The key-driver table (one row per segment × attribute) and how it was computed."""

    table: pd.DataFrame
    score: str
    attributes: tuple[str, ...]
    segment_column: str | None
    bootstrap: int
    seed: int
    skipped: tuple[tuple[str, str], ...] = ()  # (segment, why) of segments too small or constant to analyse

    def of_segment(self, segment: str = ALL_SEGMENTS) -> pd.DataFrame:
        """The rows of one segment (`all` for every respondent), by rank."""
        return self.table[self.table["segment"] == segment].sort_values("rank").reset_index(drop=True)

    def fix_first(self, segment: str = ALL_SEGMENTS) -> list[str]:
        rows = self.of_segment(segment)
        return rows.loc[rows["quadrant"] == FIX_FIRST, "attribute"].tolist()


def subset_r2(corr: np.ndarray) -> dict[frozenset[int], float]:
    """R² of the regression of variable 0 on every subset of variables 1..p, from their correlation matrix.

    Args:
        corr: (p+1)×(p+1) correlation matrix, the score first.
    Returns:
        Subset of attribute positions (0-based, excluding the score) → R².
    """
    p = corr.shape[0] - 1
    r = corr[0, 1:]
    R = corr[1:, 1:]
    out: dict[frozenset[int], float] = {frozenset(): 0.0}
    for size in range(1, p + 1):
        for subset in combinations(range(p), size):
            idx = list(subset)
            # lstsq, not solve: two perfectly correlated ratings must not abort the analysis.
            beta = np.linalg.lstsq(R[np.ix_(idx, idx)], r[idx], rcond=None)[0]
            out[frozenset(subset)] = float(np.clip(r[idx] @ beta, 0.0, 1.0))
    return out


def shapley_r2(corr: np.ndarray) -> np.ndarray:
    """Each attribute's Shapley share of R² (sums to the full model's R²).

    φ_j = Σ_{S ⊆ P∖{j}} |S|!(p−|S|−1)!/p! · (R²(S ∪ {j}) − R²(S)).
    """
    p = corr.shape[0] - 1
    r2 = subset_r2(corr)
    weight = [factorial(s) * factorial(p - s - 1) / factorial(p) for s in range(p)]
    phi = np.zeros(p)
    for subset, value in r2.items():
        for j in range(p):
            if j not in subset:
                phi[j] += weight[len(subset)] * (r2[subset | {j}] - value)
    return phi


def _corr(values: np.ndarray) -> np.ndarray:
    corr = np.corrcoef(values, rowvar=False)
    return np.nan_to_num(corr, nan=0.0)


def _complete_cases(respondents: pd.DataFrame, score: str, attributes: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in (score, *attributes) if c not in respondents.columns]
    if missing:
        raise KeyDriverError(f"survey: column '{missing[0]}' not found; columns are {list(respondents.columns)}")
    frame = respondents[[score, *attributes]].apply(pd.to_numeric, errors="coerce").astype(float)
    # Listwise deletion: Shapley shares need every attribute on the same respondents.
    return frame.dropna()


def _analyse_one(values: np.ndarray, attributes: Sequence[str], segment: str, bootstrap: int,
                 rng: np.random.Generator, min_respondents: int) -> pd.DataFrame:
    n = len(values)
    if n < min_respondents:
        raise KeyDriverError(f"segment '{segment}': {n} respondents rated every attribute, below the minimum "
                             f"of {min_respondents}")
    constant = [a for j, a in enumerate(attributes) if np.ptp(values[:, j + 1]) == 0]
    if np.ptp(values[:, 0]) == 0 or constant:
        what = f"rating '{constant[0]}'" if constant else "the score"
        raise KeyDriverError(f"segment '{segment}': {what} has a single value; its importance is undefined")
    phi = shapley_r2(_corr(values))
    r2 = float(phi.sum())
    performance = values[:, 1:].mean(axis=0)
    boot_share = np.empty((bootstrap, len(attributes)))
    boot_perf = np.empty((bootstrap, len(attributes)))
    for b in range(bootstrap):
        draw = values[rng.integers(0, n, n)]
        phi_b = shapley_r2(_corr(draw))
        boot_share[b] = phi_b / phi_b.sum() if phi_b.sum() > 0 else np.nan
        boot_perf[b] = draw[:, 1:].mean(axis=0)
    share = phi / r2 if r2 > 0 else np.full(len(attributes), np.nan)
    with np.errstate(invalid="ignore"):
        low, high = (np.nanpercentile(boot_share, q, axis=0) if bootstrap else share for q in (2.5, 97.5))
        perf_low, perf_high = (np.percentile(boot_perf, q, axis=0) if bootstrap else performance for q in (2.5, 97.5))
    important = share > 1.0 / len(attributes)  # above the average share
    performing = performance > performance.mean()
    quadrant = np.where(important, np.where(performing, MAINTAIN, FIX_FIRST),
                        np.where(performing, OVER_INVESTED, LOWER_PRIORITY))
    table = pd.DataFrame({
        "segment": segment, "attribute": list(attributes), "importance": share, "importance_low": low,
        "importance_high": high, "r2_contribution": phi, "performance": performance,
        "performance_low": perf_low, "performance_high": perf_high, "quadrant": quadrant,
        "respondents": n, "r2": r2,
    })
    table = table.sort_values(["importance", "attribute"], ascending=[False, True], kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table[list(COLUMNS)]


def key_drivers(
    respondents: pd.DataFrame, score: str, attributes: Sequence[str], segments: pd.Series | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, min_respondents: int = MIN_RESPONDENTS,
) -> KeyDriverAnalysis:
    """Importance (Shapley share of R²) and performance (mean rating) of each rated attribute, with quadrants.

    Args:
        respondents: one row per respondent with the score and the attribute ratings.
        score: the score column (e.g. NPS 0–10).
        attributes: the rated attributes (the config's `drivers`).
        segments: optional segment label per respondent (aligned to `respondents`' rows); segments
            with fewer than `min_respondents` complete answers are left out, the rest analysed apart.
        bootstrap: bootstrap draws for the 95 % intervals (0: none).
        seed: random seed of the bootstrap.
        min_respondents: the fewest complete answers an analysis accepts.
    Returns:
        The analysis; its table has `segment` = "all" for every respondent, then one block per segment.
    """
    attributes = tuple(attributes)
    if not 2 <= len(attributes) <= MAX_ATTRIBUTES:
        raise KeyDriverError(f"key drivers need 2 to {MAX_ATTRIBUTES} rated attributes, got {len(attributes)}")
    if bootstrap < 0:
        raise KeyDriverError(f"bootstrap draws must be at least 0, got {bootstrap}")
    frame = _complete_cases(respondents.reset_index(drop=True), score, attributes)
    rng = np.random.default_rng(seed)
    parts = [_analyse_one(frame.to_numpy(), attributes, ALL_SEGMENTS, bootstrap, rng, min_respondents)]
    skipped: list[tuple[str, str]] = []
    if segments is not None:
        if len(segments) != len(respondents):
            raise KeyDriverError(f"{len(segments)} segment labels for {len(respondents)} respondents")
        labels = pd.Series(np.asarray(segments, dtype=object)).astype("string").fillna("missing").astype(str)
        labels = labels.loc[frame.index]
        for value in sorted(labels.unique()):
            try:
                parts.append(_analyse_one(frame[labels == value].to_numpy(), attributes, value, bootstrap, rng,
                                          min_respondents))
            except KeyDriverError as err:  # one thin segment must not hide the others; it is reported
                skipped.append((value, str(err)))
    table = pd.concat(parts, ignore_index=True)
    segment_column = None if segments is None else (segments.name if isinstance(segments, pd.Series) else "segment")
    return KeyDriverAnalysis(table, score, attributes, None if segment_column is None else str(segment_column),
                             bootstrap, seed, tuple(skipped))
