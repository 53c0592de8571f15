"""SHAP explanations of a ScoringBundle, per customer, against the columns the user knows.

Pure logic over a loaded bundle and customer rows, shared by batch scoring, the explain and
report pipelines and the API. Every model input is one raw customer column (categoricals are
integer codes split natively by LightGBM), so a contribution already belongs to a column the
user knows (`contract`, never `contract__2`); the churn model's two extra inputs are reported as
predicted-experience features.

What is explained, and in which space (contributions add up exactly in that space):

- `<bottom band>` (e.g. `detractor`): the log-odds of P(bottom band). The score model is
  multiclass over the bands (temperature-scaled), so exact TreeSHAP gives one contribution
  vector per band in logit space (divided by the calibration temperature, which keeps them
  exact). The log-odds of P(bottom band) = z_bottom − log Σ_other exp(z_other) is non-linear
  in the band logits, so the per-band contributions are combined with the *average gradient*
  of the target along the straight line from the base logits (the TreeSHAP expected values) to
  the customer's logits (Gauss–Legendre quadrature), the chain rule that DeepSHAP and
  integrated gradients use for an output non-linearity. By the fundamental theorem of calculus
  the result adds up to target(customer) − target(base).
- `expected_score`: the expected score in score points, from exact TreeSHAP of the
  expected-score regression booster. Its prediction is clip(raw, lowest level, highest level);
  inside the scale that is the raw output and TreeSHAP adds up to it directly. For the rare rows
  whose raw output falls outside the scale, every contribution is shrunk by the same factor
  (clip(raw) − clip(base)) / (raw − base) ∈ [0, 1], so they still add up exactly to the
  clipped prediction and keep their signs and order.
- `cause_<code>`: log-odds of naming the cause; `<driver rating>`: the predicted rating;
  `churn`: log-odds of churning — binary/regression models, explained by exact TreeSHAP in their
  raw output space directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxpredict.features.build import BOOLEAN, CATEGORICAL, DATE
from cxpredict.features.load import DataError
from cxpredict.models.bundle import ScoringBundle, band_column, cause_column, driver_column
from cxpredict.models.ensemble import EnsembleShap, is_ensemble
from cxpredict.models.treeshap import TreeShap

EXPECTED_SCORE = "expected_score"
CHURN = "churn"
LOG_ODDS, SCORE_POINTS, RATING_POINTS = "log-odds", "score points", "rating points"
PREDICTED = "predicted"
QUADRATURE_NODES = 16
MAX_QUADRATURE_NODES = 256
ADDITIVITY_TOLERANCE = 1e-9


class ExplainError(DataError):
    """A request the model cannot explain (unknown target or column); one readable line."""


@dataclass(frozen=True)
class Target:
    """One explained prediction: its name, the scores column it explains and its additive space."""

    name: str
    output_column: str
    space: str
    label: str


@dataclass
class Explanation:
    """Contributions of every feature to one target for a set of customers.

    `base + values.sum(axis=1) == output` holds exactly (to floating-point and quadrature error),
    `output` being the model's prediction in the target's space.
    """

    target: Target
    values: np.ndarray
    base: float
    output: np.ndarray
    feature_names: list[str]
    kinds: list[str]
    matrix: np.ndarray = field(repr=False)

    @property
    def additivity_error(self) -> float:
        """Largest |base + sum of contributions − prediction| over the rows."""
        if len(self.output) == 0:
            return 0.0
        return float(np.max(np.abs(self.base + self.values.sum(axis=1) - self.output)))


def available_targets(bundle: ScoringBundle) -> list[Target]:
    """Every target a bundle can explain, in a fixed order."""
    bottom = bundle.bottom_band
    targets = [
        Target(bottom, band_column(bottom), LOG_ODDS, f"P({bottom})"),
        Target(EXPECTED_SCORE, "expected_score", SCORE_POINTS, "expected score"),
    ]
    targets += [Target(f"cause_{code}", cause_column(code), LOG_ODDS, f"P(cause {code})")
                for code in bundle.cause_boosters]
    targets += [Target(driver, driver_column(driver), RATING_POINTS, f"predicted {driver}")
                for driver in bundle.driver_boosters]
    if bundle.churn_booster is not None:
        targets.append(Target(CHURN, "churn_probability", LOG_ODDS, "P(churn)"))
    return targets


def default_targets(bundle: ScoringBundle) -> list[str]:
    """The headline targets: P(bottom band), expected score and churn (when modelled)."""
    names = [bundle.bottom_band, EXPECTED_SCORE]
    return names + ([CHURN] if bundle.churn_booster is not None else [])


def resolve_targets(bundle: ScoringBundle, names: list[str] | None) -> list[Target]:
    """The requested targets (all when `names` is empty); an unknown name is an ExplainError."""
    targets = available_targets(bundle)
    if not names:
        return targets
    by_name = {t.name: t for t in targets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ExplainError(
            f"target '{unknown[0]}' is not explained by model '{bundle.name}'; targets are {list(by_name)}"
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def experience_feature_names(bundle: ScoringBundle) -> list[str]:
    """Names of the churn model's predicted-experience inputs, as reported in explanations."""
    return [f"{PREDICTED}_{EXPECTED_SCORE}", f"{PREDICTED}_{band_column(bundle.bottom_band)}"]


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0


def _band_log_odds(z: np.ndarray, in_band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P(band) − log P(not band) of softmax(z), and its gradient with respect to z."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    inside = (e * in_band).sum(axis=1)
    outside = (e * ~in_band).sum(axis=1)
    value = np.log(inside) - np.log(outside)
    grad = np.where(in_band, e / inside[:, None], -e / outside[:, None])
    return value, grad


def combine_bands(
    band_shap: np.ndarray, temperature: float, band: int
) -> tuple[np.ndarray, float, np.ndarray]:
    """Per-band logit contributions → contributions to the log-odds of P(band).

    Args:
        band_shap: exact TreeSHAP of the band model, (n, bands, features + 1), bias last.
        temperature: the score model's calibration temperature (logits are divided by it).
        band: index of the explained band (in `bundle.band_names` order).
    Returns:
        (contributions (n, features), base value, prediction (n,)): base + Σ contributions = prediction.
    """
    phi = band_shap[:, :, :-1] / temperature
    if len(phi) == 0:
        return np.zeros((0, phi.shape[2])), float("nan"), np.zeros(0)
    in_band = (np.arange(band_shap.shape[1]) == band)[None, :]
    z0 = band_shap[:1, :, -1] / temperature  # the expected logits: the same for every row
    z = z0 + phi.sum(axis=2)
    base = float(_band_log_odds(z0, in_band)[0][0])
    output = _band_log_odds(z, in_band)[0]
    delta = z - z0
    nodes = QUADRATURE_NODES
    while True:
        # Average gradient along z0 + t·(z − z0): Σ_f W·φ_f then adds up to target(z) − target(z0).
        average_grad = np.zeros_like(z)
        for t, w in zip(*_gauss_legendre(nodes), strict=True):
            average_grad += w * _band_log_odds(z0 + t * delta, in_band)[1]
        values = np.einsum("nc,ncf->nf", average_grad, phi)
        error = np.abs(base + values.sum(axis=1) - output).max(initial=0.0)
        if error <= ADDITIVITY_TOLERANCE or nodes >= MAX_QUADRATURE_NODES:
            return values, base, output
        nodes *= 2


def clip_contributions(
    shap: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """TreeSHAP of a regression whose prediction is clip(raw, low, high), additive in the clipped space.

    Args:
        shap: exact TreeSHAP of the regression booster, (n, features + 1), bias last.
        low, high: the clip bounds (the scale's ends).
    Returns:
        (contributions, base, prediction) with base = clip(expected raw) and prediction = clip(raw);
        rows inside the bounds keep their TreeSHAP values unchanged, rows outside have every
        contribution scaled by (clip(raw) − base) / (raw − raw base) ∈ [0, 1].
    """
    values = shap[:, :-1]
    if len(shap) == 0:
        return values.copy(), float("nan"), np.zeros(0)
    raw_base = float(shap[0, -1])
    raw = raw_base + values.sum(axis=1)
    base = float(np.clip(raw_base, low, high))
    output = np.clip(raw, low, high)
    span = raw - raw_base
    scaled = (output != raw) | (base != raw_base)
    factor = np.ones(len(raw))
    moved = scaled & (span != 0)
    factor[moved] = (output[moved] - base) / span[moved]
    return values * factor[:, None], base, output


class DriverExplainer:
    """Explains a bundle's predictions; boosters are read once and reused for every batch.

    Args:
        bundle: the trained bundle.
        threads: worker threads for TreeSHAP.
    """

    def __init__(self, bundle: ScoringBundle, threads: int | None = None):
        self.bundle = bundle
        self.threads = threads
        self._engines: dict[str, TreeShap | EnsembleShap] = {}

    def _engine(self, key: str) -> TreeShap | EnsembleShap:
        """The TreeSHAP engine of one booster: `score` (bands), `expected_score`, `churn`, or a
        cause / rating target name."""
        if key not in self._engines:
            b = self.bundle
            if key == "score":
                booster = b.score_booster
            elif key == EXPECTED_SCORE:
                booster = b.expected_score_booster
            elif key == CHURN:
                booster = b.churn_booster
            elif key.startswith("cause_") and key.removeprefix("cause_") in b.cause_boosters:
                booster = b.cause_boosters[key.removeprefix("cause_")]
            else:
                booster = b.driver_boosters[key]
            # An ensemble brings its own exact SHAP in its output space (models/ensemble.py).
            self._engines[key] = booster.explainer() if is_ensemble(booster) else TreeShap().fit(booster)
        return self._engines[key]

    @property
    def feature_names(self) -> list[str]:
        return list(self.bundle.pipeline.feature_names_)

    def explain_matrix(self, X: np.ndarray, targets: list[Target]) -> dict[str, Explanation]:
        """Explanations of encoded rows (the pipeline's matrix) for each target.

        Args:
            X: `bundle.pipeline.transform(customers)`.
            targets: from `resolve_targets`.
        Returns:
            One Explanation per target name.
        """
        b = self.bundle
        names = self.feature_names
        kinds = [s.kind for s in b.pipeline.specs_]
        out: dict[str, Explanation] = {}
        for target in targets:
            if target.name == b.bottom_band:
                band_shap = self._engine("score").shap_values(X, self.threads)
                values, base, output = combine_bands(
                    band_shap, b.score_temperature, b.band_names.index(b.bottom_band)
                )
                out[target.name] = Explanation(target, values, base, output, names, kinds, X)
            elif target.name == EXPECTED_SCORE:
                shap = self._engine(EXPECTED_SCORE).shap_values(X, self.threads)[:, 0, :]
                values, base, output = clip_contributions(shap, b.levels[0], b.levels[-1])
                out[target.name] = Explanation(target, values, base, output, names, kinds, X)
            elif target.name == CHURN:
                out[target.name] = self._explain_churn(X, target, names, kinds)
            else:
                shap = self._engine(target.name).shap_values(X, self.threads)[:, 0, :]
                out[target.name] = _raw_explanation(target, shap, names, kinds, X)
        return out

    def _explain_churn(self, X: np.ndarray, target: Target, names: list[str], kinds: list[str]) -> Explanation:
        b = self.bundle
        if not b.churn_uses_experience:
            shap = self._engine(CHURN).shap_values(X, self.threads)[:, 0, :]
            return _raw_explanation(target, shap, names, kinds, X)
        # The churn model's extra inputs are exactly what predict_matrix feeds it.
        predicted = b.predict_matrix(X, self.threads, causes=False, drivers=False)
        churn_X = b.churn_matrix(X, predicted[EXPECTED_SCORE], predicted[band_column(b.bottom_band)])
        shap = self._engine(CHURN).shap_values(churn_X, self.threads)[:, 0, :]
        return _raw_explanation(target, shap, [*names, *experience_feature_names(b)],
                                [*kinds, PREDICTED, PREDICTED], churn_X)

    def explain(self, customers: pd.DataFrame, targets: list[str] | None = None) -> dict[str, Explanation]:
        """Explanations of customer rows for the named targets (all when None).

        Args:
            customers: customer rows with the model's columns.
            targets: target names (see `available_targets`).
        Returns:
            One Explanation per target name.
        """
        return self.explain_matrix(self.bundle.pipeline.transform(customers), resolve_targets(self.bundle, targets))


def _raw_explanation(target: Target, shap: np.ndarray, names: list[str], kinds: list[str],
                     matrix: np.ndarray) -> Explanation:
    values = shap[:, :-1]
    base = float(shap[0, -1]) if len(shap) else 0.0
    return Explanation(target, values, base, base + values.sum(axis=1), names, kinds, matrix)


def format_values(values: np.ndarray, kind: str, categories: tuple[str, ...] = ()) -> np.ndarray:
    """Readable text of encoded values of one feature: category names, dates, yes/no, numbers."""
    out = np.full(len(values), "missing", dtype=object)
    present = np.isfinite(values)
    v = values[present]
    if kind == CATEGORICAL:
        lookup = np.asarray(categories, dtype=object)
        codes = v.astype(np.int64)
        ok = (codes >= 0) & (codes < len(lookup))
        text = np.full(len(v), "unknown", dtype=object)
        text[ok] = lookup[codes[ok]]
        out[present] = text
    elif kind == BOOLEAN:
        out[present] = np.where(v > 0.5, "yes", "no")
    elif kind == DATE:
        days = np.floor(v).astype(np.int64).astype("datetime64[D]")
        out[present] = np.datetime_as_string(days, unit="D").astype(object)
    else:
        out[present] = np.array([f"{x:.6g}" for x in v], dtype=object)
    return out


def top_drivers(explanation: Explanation, k: int, bundle: ScoringBundle, prefix: str = "driver") -> pd.DataFrame:
    """Flat per-customer top-k driver columns for one target, largest |contribution| first.

    Columns `{prefix}{i}_{target}_feature` (text), `..._value` (the customer's value as text)
    and `..._contribution` (float, in the target's space): plain Parquet types any marketing
    system can read. Ties keep the feature order; fewer than k features leave empty columns.

    Args:
        explanation: one target's explanation.
        k: drivers per customer.
        bundle: the bundle (categories to decode values).
        prefix: column prefix.
    Returns:
        A frame with 3·k columns, one row per explained customer.
    """
    values = explanation.values
    n, n_features = values.shape
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    categories = {s.name: s.categories for s in bundle.pipeline.specs_}
    columns: dict[str, np.ndarray] = {}
    rows = np.arange(n)
    name = explanation.target.name
    for rank in range(k):
        if rank >= n_features:
            columns[f"{prefix}{rank + 1}_{name}_feature"] = np.full(n, None, dtype=object)
            columns[f"{prefix}{rank + 1}_{name}_value"] = np.full(n, None, dtype=object)
            columns[f"{prefix}{rank + 1}_{name}_contribution"] = np.full(n, np.nan)
            continue
        chosen = order[:, rank]
        feature_text = np.asarray(explanation.feature_names, dtype=object)[chosen]
        value_text = np.empty(n, dtype=object)
        for j in np.unique(chosen):
            hit = chosen == j
            feature = explanation.feature_names[j]
            value_text[hit] = format_values(
                explanation.matrix[hit, j], explanation.kinds[j], categories.get(feature, ())
            )
        columns[f"{prefix}{rank + 1}_{name}_feature"] = feature_text
        columns[f"{prefix}{rank + 1}_{name}_value"] = value_text
        columns[f"{prefix}{rank + 1}_{name}_contribution"] = values[rows, chosen]
    return pd.DataFrame(columns)


def explain_top_k(
    bundle: ScoringBundle, customers: pd.DataFrame, k: int, targets: list[str] | None = None,
    threads: int | None = None, chunk_rows: int = 50_000,
) -> pd.DataFrame:
    """Top-k drivers per customer for the targets (default: bottom band, expected score, churn).

    Rows are explained in chunks so memory stays bounded on large bases.

    Args:
        bundle: the trained bundle.
        customers: customer rows.
        k: drivers per customer and target (at least 1).
        targets: target names; None means `default_targets`.
        threads: TreeSHAP threads.
        chunk_rows: rows per chunk.
    Returns:
        One row per customer (same index as `customers`), 3·k columns per target.
    """
    if k < 1:
        raise ExplainError(f"--explain must be at least 1, got {k}")
    resolved = resolve_targets(bundle, targets or default_targets(bundle))
    explainer = DriverExplainer(bundle, threads)
    parts = []
    for start in range(0, len(customers), chunk_rows):
        X = bundle.pipeline.transform(customers.iloc[start:start + chunk_rows])
        explained = explainer.explain_matrix(X, resolved)
        parts.append(pd.concat([top_drivers(explained[t.name], k, bundle) for t in resolved], axis=1))
    if not parts:
        return pd.DataFrame(index=customers.index)
    frame = pd.concat(parts, ignore_index=True)
    frame.index = customers.index
    return frame
