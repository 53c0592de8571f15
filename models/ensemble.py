"""An averaged ensemble of diverse learners that serves and explains like one booster.

Why: on a few hundred respondents the tuned LightGBM's pick is mostly noise (issue 15); the
average of diverse learners (tuned and fixed regularised LightGBM, CatBoost with native
categoricals, a regularised linear model on spline / one-hot features) is better and steadier.
`Ensemble` sits where a `lightgbm.Booster` sits in the bundle: `predict_raw` of
models/estimators.py calls its `predict_raw`, and models/explain.py its `shap_values`.

The output space (what `predict_raw` returns and SHAP adds up in):

- multiclass: log p, p = Σ_m w_m softmax(z_m) (softmax(log p / T) is p sharpened or flattened by
  the calibration temperature T, and softmax(log p) = p);
- binary: logit p, p = Σ_m w_m σ(z_m);
- regression: Σ_m w_m z_m.

SHAP is exact and additive: every member's exact contributions φ_m in its own margin space
(TreeSHAP of models/treeshap.py for LightGBM, CatBoost's own `ShapValues`, exact linear SHAP
for the linear model, summed over each input feature's basis columns) are combined with the
chain rule along the straight path from the members' base margins to the row's margins: the
average gradient of the ensemble output with respect to each member's margins (Gauss–Legendre
quadrature, the integrated-gradients rule models/explain.py uses for the bands) times φ_m. By the
fundamental theorem of calculus the sum of contributions is output(row) − output(base); for
regression the rule is exactly Σ_m w_m φ_m. The linear model's basis (B-splines with the knots
scikit-learn's SplineTransformer placed at training, evaluated by SciPy; one-hot levels) is
stored as arrays, so the bundle stays data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.interpolate import BSpline
from scipy.special import expit, log_softmax, logsumexp, softmax

from cxpredict.models.estimators import predict_raw
from cxpredict.models.treeshap import TreeShap

MULTICLASS, BINARY, REGRESSION = "multiclass", "binary", "regression"
LIGHTGBM, CATBOOST, LINEAR = "lightgbm", "catboost", "linear"
QUADRATURE_NODES = 16
MAX_QUADRATURE_NODES = 256
ADDITIVITY_TOLERANCE = 1e-9
SPLINE, ONE_HOT, NUMERIC = "spline", "one_hot", "numeric"


def _outputs(task: str, num_class: int) -> int:
    return num_class if task == MULTICLASS else 1


@dataclass
class CatBoostMember:
    """A CatBoost model over the pipeline's matrix; categorical codes become integer columns (missing: -1)."""

    model: Any  # catboost.CatBoost, stored in CatBoost's own .cbm format (models/bundle_files.py)
    categorical: list[int]
    n_features: int

    def pool(self, X: np.ndarray, label: np.ndarray | None = None, weight: np.ndarray | None = None) -> Any:
        from catboost import Pool

        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
        for j in self.categorical:
            column = X[:, j]
            frame[f"f{j}"] = np.where(np.isfinite(column), column, -1).astype(np.int64)
        return Pool(frame, label=label, weight=weight, cat_features=list(self.categorical))

    def margins(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        raw = self.model.predict(self.pool(X), prediction_type="RawFormulaVal", thread_count=threads or -1)
        return np.asarray(raw, float).reshape(len(X), -1)

    def shap(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        values = self.model.get_feature_importance(data=self.pool(X), type="ShapValues", thread_count=threads or -1)
        values = np.asarray(values, float)
        return values[:, None, :] if values.ndim == 2 else values


@dataclass
class BasisColumn:
    """How one input feature becomes columns of the linear model (before standardising).

    kind `spline`: B-spline basis of the clipped value (knots `knots`, degree `degree`);
    `numeric`: the value itself; `one_hot`: one column per level in `levels`. Missing values
    take `fill` (spline / numeric) or no level (one-hot); `missing_column` adds a 0/1 column.
    """

    feature: int
    kind: str
    knots: np.ndarray = field(default_factory=lambda: np.zeros(0))
    degree: int = 3
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fill: float = 0.0
    missing_column: bool = False

    def width(self) -> int:
        if self.kind == SPLINE:
            width = len(self.knots) - self.degree - 1
        elif self.kind == ONE_HOT:
            width = len(self.levels)
        else:
            width = 1
        return width + int(self.missing_column)

    def encode(self, values: np.ndarray) -> np.ndarray:
        missing = ~np.isfinite(values)
        if self.kind == ONE_HOT:
            out = (values[:, None] == self.levels[None, :]).astype(float)
        else:
            filled = np.where(missing, self.fill, values)
            if self.kind == SPLINE:
                t, k = self.knots, self.degree
                clipped = np.clip(filled, t[k], t[-k - 1])  # constant extrapolation, as SplineTransformer's
                out = BSpline.design_matrix(clipped, t, k, extrapolate=False).toarray()
            else:
                out = filled[:, None].astype(float)
        if self.missing_column:
            out = np.column_stack([out, missing.astype(float)])
        return out


@dataclass
class LinearMember:
    """A regularised linear model (logistic, multinomial or ridge) on standardised basis columns."""

    columns: list[BasisColumn]
    mean: np.ndarray  # of each basis column over the training rows (standardising)
    scale: np.ndarray
    coef: np.ndarray  # (outputs, basis columns), on standardised columns
    intercept: np.ndarray  # (outputs,)
    background: np.ndarray  # mean standardised basis column over the training rows (SHAP's base)
    n_features: int

    def design(self, X: np.ndarray) -> np.ndarray:
        parts = [c.encode(np.asarray(X[:, c.feature], float)) for c in self.columns]
        basis = np.column_stack(parts) if parts else np.zeros((len(X), 0))
        return (basis - self.mean) / self.scale

    def owners(self) -> np.ndarray:
        return np.concatenate([np.full(c.width(), c.feature) for c in self.columns]) if self.columns \
            else np.zeros(0, int)

    def margins(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """design(X) @ coef.T + intercept, summed one input column at a time (no design matrix).

        The model is additive over input columns, so each column's share is a univariate function: a spline
        with the coefficients folded in (one BSpline call, several outputs at once), a table lookup for
        one-hot levels, a slope for numeric columns. Equal to the design-matrix product to rounding
        (tests/unit/test_ensemble_linear.py); several times faster on large batches.
        """
        intercept, parts = self._additive
        out = np.tile(intercept, (len(X), 1))
        for column, beta in parts:
            values = np.asarray(X[:, column.feature], float)
            missing = ~np.isfinite(values)
            if column.missing_column:
                out += missing[:, None] * beta[:, -1]
                beta = beta[:, :-1]
            if column.kind == ONE_HOT:
                if len(column.levels):
                    at = np.clip(np.searchsorted(column.levels, values), 0, len(column.levels) - 1)
                    hit = column.levels[at] == values
                    out += np.where(hit[:, None], beta.T[at], 0.0)
                continue
            filled = np.where(missing, column.fill, values)
            if column.kind == SPLINE:
                t, k = column.knots, column.degree
                clipped = np.clip(filled, t[k], t[-k - 1])
                out += BSpline(t, beta.T, k, extrapolate=False)(clipped)
            else:
                out += filled[:, None] * beta[:, 0]
        return out

    @cached_property
    def _additive(self) -> tuple[np.ndarray, list[tuple[BasisColumn, np.ndarray]]]:
        """The intercept with the standardising offsets folded in, and each column's coefficients over its
        raw (unstandardised) basis columns, shape (outputs, width)."""
        beta = self.coef / self.scale
        intercept = self.intercept - beta @ self.mean
        parts, start = [], 0
        for column in self.columns:
            width = column.width()
            parts.append((column, beta[:, start:start + width]))
            start += width
        return np.asarray(intercept, float), parts

    def shap(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Exact linear SHAP (independent features): β·(basis(x) − mean basis), summed per input feature."""
        centred = self.design(X) - self.background
        k = len(self.intercept)
        out = np.zeros((len(X), k, self.n_features + 1))
        owners = self.owners()
        for c in range(k):
            per_column = centred * self.coef[c]
            if len(owners):
                np.add.at(out[:, c, :], (slice(None), owners), per_column)
            out[:, c, -1] = self.intercept[c] + float(self.background @ self.coef[c])
        return out


@dataclass
class LightGBMMember:
    """A LightGBM booster; TreeSHAP from the project's engine."""

    booster: lgb.Booster

    def margins(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        # predict_raw is every booster's one way to predict (compiled trees included, models/compiled.py).
        return np.asarray(predict_raw(self.booster, X, threads), float).reshape(len(X), -1)


@dataclass
class Ensemble:
    """Members averaged in probability space (regression: in value space) with non-negative weights summing to 1.

    Attributes:
        task: multiclass | binary | regression.
        num_class: classes (multiclass).
        names: each member's name (`lgbm_tuned`, `lgbm_regularised`, `catboost`, `linear`).
        members: LightGBMMember | CatBoostMember | LinearMember, aligned with `names`.
        weights: the averaging weights.
        temperature: calibration of the averaged output (output / T; 1: none), chosen out of fold.
    """

    task: str
    num_class: int
    names: list[str]
    members: list[Any]
    weights: np.ndarray
    temperature: float = 1.0

    def member_margins(self, X: np.ndarray, threads: int | None = None) -> list[np.ndarray]:
        return [m.margins(X, threads) for m in self.members]

    def combine(self, margins: list[np.ndarray]) -> np.ndarray:
        """The ensemble output (log p, logit p or the value, over the temperature) from the members' margins."""
        return combine_margins(self.task, margins, self.weights) / self.temperature

    def predict_raw(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        raw = self.combine(self.member_margins(X, threads))
        return raw if self.task == MULTICLASS else raw[:, 0]

    def explainer(self) -> EnsembleShap:
        return EnsembleShap(self)

    def describe(self) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.names, self.weights, strict=True)}


def combine_margins(task: str, margins: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """(n, outputs) ensemble output from members' (n, outputs) margins."""
    if task == REGRESSION:
        return sum(w * z for w, z in zip(weights, margins, strict=True))
    if task == MULTICLASS:
        logs = np.stack([log_softmax(z, axis=1) for z in margins])  # (m, n, k)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(weights, float))[:, None, None]
        return logsumexp(logs + log_w, axis=0)
    p = sum(w * expit(z) for w, z in zip(weights, margins, strict=True))
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return np.log(p) - np.log1p(-p)


def _gradients(task: str, margins: list[np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
    """d output_c / d z_{m,c'} for every member m: (n, outputs, outputs) arrays."""
    if task == MULTICLASS:
        probs = [softmax(z, axis=1) for z in margins]
        p = sum(w * s for w, s in zip(weights, probs, strict=True))
        grads = []
        for w, s in zip(weights, probs, strict=True):
            jac = s[:, :, None] * (np.eye(s.shape[1])[None] - s[:, None, :])  # ds_c/dz_c'
            grads.append(w * jac / p[:, :, None])
        return grads
    s = [expit(z) for z in margins]
    p = np.clip(sum(w * v for w, v in zip(weights, s, strict=True)), 1e-15, 1 - 1e-15)
    return [(w * v * (1 - v) / (p * (1 - p)))[:, :, None] for w, v in zip(weights, s, strict=True)]


class EnsembleShap:
    """Exact SHAP of an Ensemble in its output space: `shap_values` like TreeShap's, bias last."""

    def __init__(self, ensemble: Ensemble):
        self.ensemble = ensemble
        self._tree_engines: dict[int, TreeShap] = {}

    def member_shap(self, index: int, X: np.ndarray, threads: int | None) -> np.ndarray:
        member = self.ensemble.members[index]
        if isinstance(member, LightGBMMember):
            if index not in self._tree_engines:
                self._tree_engines[index] = TreeShap().fit(member.booster)
            return self._tree_engines[index].shap_values(X, threads)
        return member.shap(X, threads)

    def shap_values(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(n, outputs, features + 1): contributions to the ensemble output, the base value last."""
        e = self.ensemble
        phis = [self.member_shap(i, X, threads) for i in range(len(e.members))]
        n, k, width = len(X), _outputs(e.task, e.num_class), X.shape[1] + 1
        out = np.zeros((n, k, width))
        if n == 0:
            return out
        bases = [phi[:1, :, -1] for phi in phis]  # (1, k) each: the same for every row
        z0 = [np.broadcast_to(b, (n, k)) for b in bases]
        z1 = [z + phi[:, :, :-1].sum(axis=2) for z, phi in zip(z0, phis, strict=True)]
        base = e.combine(bases)[0]
        output = e.combine(z1)
        if e.task == REGRESSION:
            for w, phi in zip(e.weights, phis, strict=True):
                out[:, :, :-1] += w * phi[:, :, :-1]
            out[:, :, -1] = base
            return out
        deltas = [b - a for a, b in zip(z0, z1, strict=True)]
        nodes = QUADRATURE_NODES
        while True:
            average = [np.zeros((n, k, k)) for _ in phis]
            x, wq = np.polynomial.legendre.leggauss(nodes)
            for t, weight in zip((x + 1) / 2, wq / 2, strict=True):
                path = [a + t * d for a, d in zip(z0, deltas, strict=True)]
                for acc, g in zip(average, _gradients(e.task, path, e.weights), strict=True):
                    acc += weight * g
            values = sum(np.einsum("nck,nkf->ncf", g, phi[:, :, :-1]) for g, phi in zip(average, phis, strict=True))
            values = values / e.temperature
            error = np.abs(base[None, :] + values.sum(axis=2) - output).max(initial=0.0)
            if error <= ADDITIVITY_TOLERANCE or nodes >= MAX_QUADRATURE_NODES:
                out[:, :, :-1] = values
                out[:, :, -1] = base
                return out
            nodes *= 2


def is_ensemble(model: Any) -> bool:
    return isinstance(model, Ensemble)
