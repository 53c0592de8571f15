"""The tuner on small samples (issue 15): regularised region, the regularised set first, no pruning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from cxpredict.models.estimators import BINARY, base_params
from cxpredict.training.train import tuning_folds
from cxpredict.training.tune import SMALL_SAMPLE_FIRST_TRIAL, cat_smooth_acts, tune_model

pytestmark = pytest.mark.model


def _rows(levels: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.integers(0, levels, n).astype(float)])
    y = (X[:, 0] + 0.3 * X[:, 2] + rng.normal(size=n) > 0.5).astype(int)
    return X, y


def _trials(X: np.ndarray, y: np.ndarray, small_sample: bool, folder: Path, trials: int) -> list:
    """The trials of a real search, read back from its SQLite study storage."""
    url, name = f"sqlite:///{folder / f'optuna-{small_sample}.db'}", f"toy-{small_sample}"
    tuned = tune_model(name, base_params(BINARY, 1, 0, 1), X, y, None, tuning_folds(len(y), y, 1), [2],
                       n_trials=trials, timeout_s=None, seed=0, log_trials=False, storage=url, study_name=name,
                       small_sample=small_sample)
    assert tuned.n_trials == trials
    return optuna.load_study(study_name=name, storage=url).trials


def test_small_samples_start_from_the_regularised_set_and_stay_regularised(tmp_path: Path) -> None:
    X, y = _rows(levels=3)
    assert not cat_smooth_acts(X, [2])
    trials = _trials(X, y, True, tmp_path, trials=6)
    assert trials[0].params == {k: v for k, v in SMALL_SAMPLE_FIRST_TRIAL.items() if k != "cat_smooth"}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # nothing pruned
    for t in trials:
        assert "cat_smooth" not in t.params  # 3 levels: LightGBM splits them one-vs-rest, no smoothing
        assert 0.01 <= t.params["learning_rate"] <= 0.06 and t.params["num_leaves"] <= 15
        assert t.params["lambda_l2"] >= 1.0


def test_cat_smooth_is_searched_where_a_categorical_has_many_levels(tmp_path: Path) -> None:
    X, y = _rows(levels=9)
    assert cat_smooth_acts(X, [2])
    assert all("cat_smooth" in t.params for t in _trials(X, y, True, tmp_path, trials=3))
    wide = _trials(X, y, False, tmp_path, trials=3)
    assert wide[0].params != SMALL_SAMPLE_FIRST_TRIAL  # the wide search queues no first trial
