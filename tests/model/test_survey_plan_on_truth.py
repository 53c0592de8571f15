"""A survey plan, answered from the ground truth and retrained on, must beat as many random customers.

Three synthetic companies (10,000 customers, 5 % surveyed, seeds 300-302); each is trained, then
retrained twice: with 400 planned customers' true answers added, and with 400 random silent
customers' answers added. Both are scored on the silent customers chosen by neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.load import Dataset, load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.training.survey_plan import plan_survey
from cxpredict.training.train import fit_models

pytestmark = pytest.mark.model
SEEDS = (300, 301, 302)
BUDGET = 400


def _fit(config: CxConfig, dataset: Dataset) -> ScoringBundle:
    return fit_models(config, dataset, tune_trials=2, holdout_fraction=0.0, log_trials=False,
                      include_churn=False).bundle


def _with_answers(dataset: Dataset, truth: pd.DataFrame, ids: np.ndarray) -> Dataset:
    extra = pd.DataFrame({"customer_id": ids, "nps": truth.loc[ids, "true_nps"].to_numpy()})
    survey = pd.concat([dataset.survey[["customer_id", "nps"]], extra], ignore_index=True)
    return Dataset(customers=dataset.customers, survey=survey, outcomes=None, campaigns=None, causes=None,
                   cause_codes=[], sources=dataset.sources)


def _silent_log_loss(bundle: ScoringBundle, dataset: Dataset, truth: pd.DataFrame, ids: np.ndarray) -> float:
    customers = dataset.customers.set_index(dataset.customers["customer_id"].astype(str)).loc[ids]
    predicted = bundle.predict(customers.reset_index(drop=True), threads=1)
    names = bundle.band_names
    y = [names.index(b) for b in truth.loc[ids, "true_band"]]
    return float(log_loss(y, predicted[[band_column(b) for b in names]].to_numpy(), labels=[0, 1, 2]))


def _run_seed(seed: int, folder: Path) -> dict[str, float]:
    write_company(generate_company(10_000, 0.05, seed=seed), folder, name=f"plan{seed}")
    config = load_config(folder / "cxpredict.yaml")
    config = config.model_copy(update={"training": config.training.model_copy(update={"threads": 1})})
    dataset = load_dataset(config)
    truth = pd.read_parquet(folder / "truth.parquet").set_index("customer_id")
    bundle = _fit(config, dataset)
    plan = plan_survey(config, bundle, dataset, BUDGET, seed=seed)["customer_id"].to_numpy()
    ids = dataset.customers["customer_id"].astype(str)
    silent = ids[~ids.isin(dataset.survey["customer_id"].astype(str))].to_numpy()
    random = np.random.default_rng(seed).choice(silent, BUDGET, replace=False)
    held = np.setdiff1d(silent, np.union1d(plan, random))
    retrain = config.model_copy(update={"causes": None, "drivers": []})
    return {
        "before": _silent_log_loss(bundle, dataset, truth, held),
        "plan": _silent_log_loss(_fit(retrain, _with_answers(dataset, truth, plan)), dataset, truth, held),
        "random": _silent_log_loss(_fit(retrain, _with_answers(dataset, truth, random)), dataset, truth, held),
    }


def test_survey_plan_reduces_silent_log_loss_more_than_random(tmp_path: Path) -> None:
    """Measured silent log loss (seeds 300-302), before / after the plan / after random:
    1.0295 / 1.0111 / 1.0237, 1.0243 / 1.0225 / 1.0173, 1.0546 / 1.0206 / 1.0276; means
    1.0361 / 1.0181 / 1.0229. The plan wins on two seeds of three and on the mean (by 0.0048,
    about half the typical per-seed gap); random wins seed 301. The runs are deterministic
    (one LightGBM thread, fixed seeds), so the assertion is on the mean, not on every seed."""
    runs = [_run_seed(seed, tmp_path / str(seed)) for seed in SEEDS]
    frame = pd.DataFrame(runs)
    assert frame["plan"].mean() < frame["random"].mean()
    assert (frame["plan"] < frame["before"]).all()
