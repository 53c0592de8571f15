"""The trained set of models as one object, and writing it to / reading it from a folder of data files.

`ScoringBundle` is what training logs and what serving and batch scoring load: the fitted
feature pipeline plus every booster, so the same code turns customer rows into scores everywhere.
On disk it is data, not a pickle (LightGBM model text, JSON, Parquet with a SHA-256 manifest;
models/bundle_files.py), so loading a registered model never runs code it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from cxpredict.features.build import FeaturePipeline
from cxpredict.models.bundle_files import BundleError, BundleFiles, read_bundle_files, write_bundle_files
from cxpredict.models.columns import band_column, cause_column, driver_column  # noqa: F401 (re-exported)
from cxpredict.models.conformal import ConformalCalibration
from cxpredict.models.drift import DriftReference
from cxpredict.models.estimators import binary_probability, multiclass_probabilities, predict_raw
from cxpredict.models.uplift import UpliftResult


@dataclass
class ScoringBundle:
    """Every fitted model of one training run, with what is needed to turn rows into scores."""

    name: str
    id_column: str
    pipeline: FeaturePipeline
    levels: list[int]
    bands: dict[str, tuple[int, int]]
    top_band: str
    bottom_band: str
    score_booster: lgb.Booster  # multiclass over the bands, temperature-scaled
    expected_score_booster: lgb.Booster  # regression of the score itself
    score_temperature: float = 1.0
    cause_boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    driver_boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    churn_booster: lgb.Booster | None = None
    churn_uses_experience: bool = False
    propensity_booster: lgb.Booster | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Effects learned from randomised campaigns, by strategy id (training/uplift.py).
    uplift: dict[str, UpliftResult] = field(default_factory=dict)
    # Propensity-weighted conformal calibration (models/conformal.py); None in older bundles.
    conformal: ConformalCalibration | None = None
    # Respondents' out-of-fold band probabilities and propensity by id (doubly robust segment figures).
    respondent_oof: pd.DataFrame | None = None
    # Training-time feature distributions for drift checks at scoring (models/drift.py).
    drift_reference: DriftReference | None = None
    # Each cause's share among respondents and the lift a problem group needs (models/problems.py).
    cause_base_rates: dict[str, float] = field(default_factory=dict)
    problem_min_lift: float = 1.5

    @property
    def band_names(self) -> list[str]:
        return sorted(self.bands, key=lambda b: self.bands[b][0])

    @property
    def output_columns(self) -> list[str]:
        columns = [band_column(b) for b in self.band_names] + ["expected_score"]
        columns += [cause_column(c) for c in self.cause_boosters]
        columns += [driver_column(d) for d in self.driver_boosters]
        if self.churn_booster is not None:
            columns.append("churn_probability")
        if self.cause_boosters and self.cause_base_rates:
            columns += ["problem_group", "problem_lift"]
        return columns

    def churn_matrix(self, X: np.ndarray, expected_score: np.ndarray, p_bottom: np.ndarray) -> np.ndarray:
        """Churn inputs: the features, plus predicted experience when the churn model uses it."""
        if not self.churn_uses_experience:
            return X
        return np.column_stack([X, expected_score, p_bottom])

    def predict_matrix(
        self, X: np.ndarray, threads: int | None = None, *, causes: bool = True, drivers: bool = True,
        churn: bool = True,
    ) -> dict[str, np.ndarray]:
        """All predictions for an encoded feature matrix, as named arrays.

        `causes=False` / `drivers=False` / `churn=False` skip those models (strategy simulation
        needs only the score and churn models, training's population figures only the score ones).
        """
        band_probs = multiclass_probabilities(predict_raw(self.score_booster, X, threads), self.score_temperature)
        expected = np.clip(predict_raw(self.expected_score_booster, X, threads), self.levels[0], self.levels[-1])
        out: dict[str, np.ndarray] = {band_column(b): band_probs[:, j] for j, b in enumerate(self.band_names)}
        out["expected_score"] = expected
        for code, booster in (self.cause_boosters if causes else {}).items():
            out[cause_column(code)] = binary_probability(predict_raw(booster, X, threads))
        for driver, booster in (self.driver_boosters if drivers else {}).items():
            out[driver_column(driver)] = predict_raw(booster, X, threads)
        if churn and self.churn_booster is not None:
            p_bottom = out[band_column(self.bottom_band)]
            churn_X = self.churn_matrix(X, expected, p_bottom)
            out["churn_probability"] = binary_probability(predict_raw(self.churn_booster, churn_X, threads))
        return out

    def predict(self, customers: pd.DataFrame, threads: int | None = None) -> pd.DataFrame:
        """Scores for customer rows: band probabilities, expected score, causes, drivers, churn."""
        from cxpredict.models.problems import bundle_problem_columns  # problems reads this module's names

        X = self.pipeline.transform(customers)
        out = self.predict_matrix(X, threads)
        out.update(bundle_problem_columns(self, out))
        frame = pd.DataFrame(out, index=customers.index)
        if self.id_column in customers.columns:
            frame.insert(0, self.id_column, customers[self.id_column].astype(str).to_numpy())
        return frame

    def response_propensity(self, customers: pd.DataFrame) -> np.ndarray | None:
        """P(responded to the survey | operational data), when a propensity model was trained."""
        if self.propensity_booster is None:
            return None
        return binary_probability(predict_raw(self.propensity_booster, self.pipeline.transform(customers)))


UNCERTAINTY_COLUMNS = [
    "response_propensity", "prediction_set", "set_size", "expected_score_low", "expected_score_high", "low_support",
]


def uncertainty_arrays(bundle: ScoringBundle, X: np.ndarray, band_probs: np.ndarray, expected: np.ndarray,
                       level: float | None = None, threads: int | None = None) -> dict[str, np.ndarray] | None:
    """`predict_uncertainty` on an encoded matrix (serving's array path); None without a calibration.

    Returns:
        `in_set` (n, bands) in `band_names` order, `set_size`, `expected_low`, `expected_high`,
        `low_support` and `response_propensity` (NaN without a propensity model).
    """
    if bundle.conformal is None:
        return None
    propensity = None
    if bundle.propensity_booster is not None:
        propensity = binary_probability(predict_raw(bundle.propensity_booster, X, threads))
    out = bundle.conformal.predict(band_probs, expected, propensity, level, scale=(bundle.levels[0], bundle.levels[-1]))
    out["response_propensity"] = np.full(len(X), np.nan) if propensity is None else propensity
    return out


def uncertainty_columns(bundle: ScoringBundle, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`uncertainty_arrays` output as table columns (the prediction set as ';'-joined band names)."""
    labels = np.array(bundle.band_names, dtype=object)
    return {
        "response_propensity": out["response_propensity"],
        "prediction_set": np.array([";".join(labels[row]) for row in out["in_set"]], dtype=object),
        "set_size": out["set_size"].astype(np.int64),
        "expected_score_low": out["expected_low"],
        "expected_score_high": out["expected_high"],
        "low_support": out["low_support"].astype(bool),
    }


def predict_uncertainty(bundle: ScoringBundle, customers: pd.DataFrame, predictions: pd.DataFrame,
                        level: float | None = None, threads: int | None = None) -> pd.DataFrame:
    """Per-customer prediction set over the bands, expected-score interval and low-support flag.

    Args:
        bundle: a bundle with a conformal calibration (older bundles give an empty frame).
        customers: the customer rows that were scored.
        predictions: `bundle.predict(customers)` (band probabilities and expected score).
        level: nominal coverage (default: the calibration's, `trust.level` at training).
        threads: LightGBM threads for the propensity model.
    Returns:
        The columns of `UNCERTAINTY_COLUMNS`, indexed like `predictions`.
    """
    if bundle.conformal is None:
        return pd.DataFrame(index=predictions.index)
    names = bundle.band_names
    band_probs = predictions[[band_column(b) for b in names]].to_numpy(float)
    out = uncertainty_arrays(bundle, bundle.pipeline.transform(customers), band_probs,
                             predictions["expected_score"].to_numpy(float), level, threads)
    assert out is not None
    return pd.DataFrame(uncertainty_columns(bundle, out), index=predictions.index)


def population_index(band_probabilities: pd.DataFrame, top_band: str, bottom_band: str) -> float:
    """100·(mean P(top band) − mean P(bottom band)): the NPS (or CSAT index) of a population."""
    return float(
        100.0 * (band_probabilities[band_column(top_band)].mean() - band_probabilities[band_column(bottom_band)].mean())
    )


def save_bundle(bundle: ScoringBundle, folder: Path) -> BundleFiles:
    """Write the bundle as a folder of data files (created; must be new or empty).

    Returns:
        The folder and its manifest's SHA-256, which the training run records.
    """
    return write_bundle_files(bundle, Path(folder))


def load_bundle(folder: Path, expected_sha256: str | None = None, label: str | None = None) -> ScoringBundle:
    """Read a bundle folder back, refusing it when a file differs from its manifest or the
    manifest from `expected_sha256` (what the training run recorded). `label` names the bundle
    in errors (default: the folder).

    Raises:
        BundleIntegrityError: a changed, missing or added file.
        BundleError: not a bundle folder, or not a bundle inside.
    """
    bundle = read_bundle_files(Path(folder), expected_sha256, label)
    if not isinstance(bundle, ScoringBundle):
        raise BundleError(f"{folder}: holds a {type(bundle).__name__}, not a ScoringBundle")
    return bundle
