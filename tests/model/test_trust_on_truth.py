"""Trust in the numbers, checked against the synthetic ground truth of silent customers.

Three synthetic companies (10,000 customers, 10 % surveyed with customer-dependent response,
seeds 200-202), each trained once with 2 tuning trials on one thread (about 13 s each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.models.bundle import band_column
from cxpredict.training.conformal import coverage_metrics
from cxpredict.training.segments import segment_figures
from cxpredict.training.train import fit_models

pytestmark = pytest.mark.model
SEEDS = (200, 201, 202)
LEVEL = 0.9


@dataclass
class SeedResult:
    coverage: dict[str, float]
    segment_covered: list[bool]
    segment_error_dr: list[float]
    segment_error_respondents: list[float]


def _true_index(bands: np.ndarray) -> float:
    return float(100 * ((bands == "promoter").mean() - (bands == "detractor").mean()))


def _run_seed(seed: int, folder: Path) -> SeedResult:
    write_company(generate_company(10_000, 0.1, seed=seed), folder, name=f"trust{seed}")
    config = load_config(folder / "cxpredict.yaml")
    config = config.model_copy(update={"training": config.training.model_copy(update={"threads": 1})})
    dataset = load_dataset(config)
    fitted = fit_models(config, dataset, tune_trials=2, holdout_fraction=0.0, log_trials=False, include_churn=False)
    bundle = fitted.bundle
    truth = pd.read_parquet(folder / "truth.parquet").set_index("customer_id").loc[dataset.customers["customer_id"]]
    silent = np.ones(len(fitted.data.X), bool)
    silent[fitted.data.targets.positions] = False
    predicted = bundle.predict_matrix(fitted.data.X[silent], 1)
    names = config.score.band_names
    band_probs = np.column_stack([predicted[band_column(b)] for b in names])
    true_band = np.array([names.index(b) for b in truth["true_band"].to_numpy()[silent]])
    coverage = coverage_metrics(bundle, fitted.data.X[silent], band_probs, predicted["expected_score"], true_band,
                                truth["true_nps"].to_numpy()[silent], level=LEVEL, threads=1)
    covered, err_dr, err_resp = [], [], []
    bands = truth["true_band"].to_numpy()
    for by in ("segment", "region"):
        table = segment_figures(config, bundle, dataset, by, level=LEVEL)
        column = dataset.customers[by].astype(str).to_numpy()
        for row in table.itertuples():
            true = _true_index(bands[column == row.segment])
            covered.append(bool(row.index_ci_low <= true <= row.index_ci_high))
            err_dr.append(abs(row.index_dr - true))
            err_resp.append(abs(row.index_respondents - true))
    return SeedResult(coverage, covered, err_dr, err_resp)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[SeedResult]:
    return [_run_seed(seed, tmp_path_factory.mktemp(f"trust{seed}")) for seed in SEEDS]


def _mean(results: list[SeedResult], key: str) -> float:
    return float(np.mean([r.coverage[key] for r in results]))


def test_weighted_conformal_covers_silent_customers(results: list[SeedResult]) -> None:
    """Measured over the three seeds (about 9,000 silent customers each): weighted band sets 0.915,
    weighted expected-score intervals 0.895 (unweighted 0.906 and 0.876). Per-seed spread is about
    0.01, so the mean of three sits well inside the 2-point bound the issue asks for."""
    assert abs(_mean(results, "conformal_coverage_weighted") - LEVEL) <= 0.02
    assert abs(_mean(results, "interval_coverage_weighted") - LEVEL) <= 0.02
    # The synthetic response bias is moderate (adversarial AUC about 0.71): weighting still
    # moves the interval coverage towards nominal rather than away from it.
    assert _mean(results, "interval_coverage_weighted") > _mean(results, "interval_coverage_unweighted")


def test_doubly_robust_segment_intervals_cover_true_segment_nps(results: list[SeedResult]) -> None:
    """24 segment estimates (3 segments + 5 regions, 3 seeds) at 90 %: measured 24/24 covered here,
    44/48 (0.917) over seeds 200-205.

    With 24 draws a 90 % interval covers on average 21.6 (binomial sd 1.5); requiring at least 18
    (75 %) fails only for intervals far too narrow. The doubly robust figure must also be closer
    to the truth than the respondents-only one (measured mean errors 5.0 vs 12.2 NPS points).
    """
    covered = [c for r in results for c in r.segment_covered]
    assert len(covered) == 24
    assert np.mean(covered) >= 0.75
    err_dr = np.mean([e for r in results for e in r.segment_error_dr])
    err_resp = np.mean([e for r in results for e in r.segment_error_respondents])
    assert err_dr < err_resp
