"""Large targets: tuning trials on a fixed sample, boosting rounds re-decided on all rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxpredict.features.config import load_config
from cxpredict.models.estimators import BINARY, binary_probability
from cxpredict.training import train as train_module
from cxpredict.training.train import fit_target, split_holdout

pytestmark = pytest.mark.model


def test_large_target_tunes_on_a_sample_and_settles_rounds_on_all_rows(
    small_company_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(small_company_dir / "cxpredict.yaml")
    rng = np.random.default_rng(0)
    n = 6000
    X = rng.normal(size=(n, 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3])))).astype(int)
    holdout = split_holdout(n, 0.2, 0, y)
    seen: list[int] = []
    real_tune = train_module.tune_model

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records the rows, runs the real search
        seen.append(len(args[3]))
        return real_tune(*args, **kwargs)

    monkeypatch.setattr(train_module, "tune_model", spy)
    monkeypatch.setattr(train_module, "TUNE_SAMPLE_ROWS", 1000)
    fitted = fit_target("toy", BINARY, X, y, None, holdout, [], config, tune_trials=3, log_trials=False)

    train_rows = int((~holdout).sum())
    assert seen == [1000]  # the trials saw the sample only
    first_fold_valid = train_module.tuning_folds(train_rows, y[~holdout], config.training.seed + 1)[0][1]
    np.testing.assert_array_equal(fitted.tuned.valid_rows, first_fold_valid)  # rounds settled on all rows
    assert fitted.tuned.valid_raw.shape == (len(first_fold_valid),)
    assert fitted.booster.num_trees() == fitted.tuned.num_boost_round
    assert roc_auc_score(y[holdout], binary_probability(fitted.test_raw)) > 0.8

    monkeypatch.setattr(train_module, "TUNE_SAMPLE_ROWS", 200_000)
    seen.clear()
    fit_target("toy", BINARY, X, y, None, holdout, [], config, tune_trials=1, log_trials=False)
    assert seen == [train_rows]  # below the limit every training row is tuned on, as before
