"""Uplift learned from randomised campaigns: T- and X-learners on LightGBM, Qini / AUUC, the ATE with its CI.

Effects are changes in P(churn) caused by treatment (treated minus control; negative = fewer
churners). The campaign is randomised, so the average treatment effect is a plain difference in
churn rates with a normal confidence interval; the learners add who benefits most, and the one
with the higher cross-validated Qini coefficient is kept.

A learner fitted on a few hundred rows per arm ranks customers only a little better than chance,
and choosing each customer's best offer from noisy per-customer effects favours the noise. So the
per-customer effect is calibrated: ATE + slope·(τ̂(x) − mean τ̂), where the slope is the
"best linear predictor" coefficient of Chernozhukov et al. (2018) estimated on out-of-fold
predictions, clipped to [0, 1] — 0 when the campaign shows no heterogeneity the learner can
find (every customer gets the ATE), 1 when the learner's differences are borne out in full.

A strategy whose ATE interval does not lie wholly below zero (indistinguishable from no effect,
or harmful) is flagged ineffective and credited with no benefit: its learned effect is max(ATE, 0)
for every customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.model_selection import StratifiedKFold

from cxpredict.models.estimators import BINARY, REGRESSION, base_params, binary_probability, fit_booster, predict_raw

LEARNERS: tuple[str, ...] = ("t", "x")
CV_FOLDS = 3
MIN_ARM_ROWS = 30  # fewer treated or control rows than this: no uplift model for the strategy
NUM_BOOST_ROUND = 150
CONFIDENCE = 0.95


def uplift_params(objective: str, seed: int, threads: int) -> dict[str, Any]:
    """Deliberately small, regularised LightGBM settings: campaign arms hold hundreds of rows, not thousands.

    Args:
        objective: "binary" (outcome models) or "regression" (X-learner effect models).
        seed: LightGBM seed.
        threads: LightGBM threads.
    Returns:
        The parameter mapping.
    """
    task = BINARY if objective == "binary" else REGRESSION
    return {
        **base_params(task, 1, seed, threads),
        "num_leaves": 7,
        "min_data_in_leaf": 30,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "lambda_l2": 5.0,
        "min_data_per_group": 30,
    }


class UpliftLearner(Protocol):
    """A fitted-effect estimator: fit(X, treated, y) -> self; predict(X) -> change in P(y=1)."""

    def fit(self, X: np.ndarray, treated: np.ndarray, y: np.ndarray) -> UpliftLearner: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


class _ArmLearner:
    """Settings shared by the learners (scikit-learn style: `__init__` only stores them)."""

    def __init__(self, categorical: list[int], seed: int = 42, threads: int = 2,
                 num_boost_round: int = NUM_BOOST_ROUND):
        self.categorical = categorical
        self.seed = seed
        self.threads = threads
        self.num_boost_round = num_boost_round


class TLearner(_ArmLearner):
    """Two outcome models, one per arm; the effect is P(y | treated) − P(y | control).

    Args:
        categorical: categorical column indices of X.
        seed: LightGBM seed.
        threads: LightGBM threads.
        num_boost_round: boosting rounds per model.
    """

    def fit(self, X: np.ndarray, treated: np.ndarray, y: np.ndarray) -> TLearner:
        """Fit the control and treated outcome models.

        Args:
            X: features; treated: 0/1 arm; y: 0/1 outcome.
        Returns:
            self.
        """
        params = uplift_params("binary", self.seed, self.threads)
        arm = np.asarray(treated) == 1
        self.control_ = fit_booster(X[~arm], y[~arm], params, self.categorical, self.num_boost_round)
        self.treated_ = fit_booster(X[arm], y[arm], params, self.categorical, self.num_boost_round)
        return self

    def predict_arms(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(y) under control and under treatment for every row."""
        return (
            binary_probability(predict_raw(self.control_, X, self.threads)),
            binary_probability(predict_raw(self.treated_, X, self.threads)),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The effect per row: P(y | treated) − P(y | control).

        Args:
            X: features.
        Returns:
            The effect per row.
        """
        control, treated = self.predict_arms(X)
        return treated - control


class XLearner(_ArmLearner):
    """Künzel et al.'s X-learner: T-learner outcome models, imputed effects per arm, two effect models.

    tau(x) = g·tau0(x) + (1 − g)·tau1(x), with g the treated share (the campaign is randomised,
    so the propensity is a constant).

    Args:
        categorical: categorical column indices of X.
        seed: LightGBM seed.
        threads: LightGBM threads.
        num_boost_round: boosting rounds per model.
    """

    def fit(self, X: np.ndarray, treated: np.ndarray, y: np.ndarray) -> XLearner:
        """Fit outcome models, then regress the imputed effects in each arm.

        Args:
            X: features; treated: 0/1 arm; y: 0/1 outcome.
        Returns:
            self.
        """
        arm = np.asarray(treated) == 1
        y = np.asarray(y, float)
        outcome = TLearner(self.categorical, self.seed, self.threads, self.num_boost_round).fit(X, treated, y)
        control_of_treated = outcome.predict_arms(X[arm])[0]
        treated_of_control = outcome.predict_arms(X[~arm])[1]
        params = uplift_params("regression", self.seed, self.threads)
        self.effect_treated_ = fit_booster(
            X[arm], y[arm] - control_of_treated, params, self.categorical, self.num_boost_round
        )
        self.effect_control_ = fit_booster(
            X[~arm], treated_of_control - y[~arm], params, self.categorical, self.num_boost_round
        )
        self.propensity_ = float(arm.mean())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The effect per row (change in P(y) under treatment).

        Args:
            X: features.
        Returns:
            The effect per row.
        """
        g = self.propensity_
        return g * predict_raw(self.effect_control_, X, self.threads) + (1 - g) * predict_raw(
            self.effect_treated_, X, self.threads
        )


def make_learner(kind: str, categorical: list[int], seed: int, threads: int) -> UpliftLearner:
    """A fresh T- or X-learner.

    Args:
        kind: "t" or "x".
        categorical: categorical column indices.
        seed: LightGBM seed.
        threads: LightGBM threads.
    Returns:
        The unfitted learner.
    """
    if kind == "t":
        return TLearner(categorical, seed, threads)
    if kind == "x":
        return XLearner(categorical, seed, threads)
    raise ValueError(f"unknown uplift learner '{kind}', use one of {list(LEARNERS)}")


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpliftCurves:
    """Qini and uplift (gain) curves over the fraction of customers targeted, best-ranked first."""

    fraction: np.ndarray
    qini: np.ndarray  # (treated positives − control positives · n_t/n_c) / n
    gain: np.ndarray  # (treated rate − control rate) · k / n

    @staticmethod
    def _area(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)

    @property
    def qini_area(self) -> float:
        return self._area(self.fraction, self.qini)

    @property
    def qini_random(self) -> float:
        """Area under the random-targeting line (a straight line to the curve's end point)."""
        return float(self.qini[-1] / 2.0)

    @property
    def auuc(self) -> float:
        return self._area(self.fraction, self.gain)

    @property
    def auuc_random(self) -> float:
        return float(self.gain[-1] / 2.0)

    @property
    def qini_coefficient(self) -> float:
        """Qini area minus the random line's: > 0 when the ranking beats random targeting."""
        return self.qini_area - self.qini_random


def uplift_curves(benefit: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> UpliftCurves:
    """Qini and gain curves of a ranking by predicted benefit on a randomised sample.

    Args:
        benefit: predicted benefit per row (higher = target first).
        treated: 0/1 arm per row.
        outcome: 0/1 desirable outcome per row (e.g. retained = 1 − churned).
    Returns:
        The curves, starting at (0, 0).
    """
    order = np.argsort(-np.asarray(benefit, float), kind="stable")
    t = np.asarray(treated)[order] == 1
    y = np.asarray(outcome, float)[order]
    n = len(y)
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(n_c > 0, y_t - y_c * n_t / np.maximum(n_c, 1), y_t)
        gain = np.where((n_t > 0) & (n_c > 0), (y_t / np.maximum(n_t, 1) - y_c / np.maximum(n_c, 1)), 0.0)
    k = np.arange(1, n + 1)
    zero = np.zeros(1)
    return UpliftCurves(
        fraction=np.concatenate([zero, k / n]),
        qini=np.concatenate([zero, qini / n]),
        gain=np.concatenate([zero, gain * k / n]),
    )


@dataclass(frozen=True)
class AverageEffect:
    """Difference in churn rates between arms of a randomised campaign, with a normal CI."""

    ate: float
    se: float
    ci_low: float
    ci_high: float
    rate_treated: float
    rate_control: float
    n_treated: int
    n_control: int


def average_treatment_effect(treated: np.ndarray, y: np.ndarray, confidence: float = CONFIDENCE) -> AverageEffect:
    """ATE = mean(y | treated) − mean(y | control) with a normal-approximation interval.

    Args:
        treated: 0/1 arm per row.
        y: 0/1 outcome per row.
        confidence: interval level.
    Returns:
        The effect, its standard error and interval.
    """
    arm = np.asarray(treated) == 1
    y = np.asarray(y, float)
    n1, n0 = int(arm.sum()), int((~arm).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("the ATE needs both a treated and a control group")
    p1, p0 = float(y[arm].mean()), float(y[~arm].mean())
    se = float(np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0))
    z = float(norm.ppf(0.5 + confidence / 2))
    ate = p1 - p0
    return AverageEffect(ate, se, ate - z * se, ate + z * se, p1, p0, n1, n0)


def stratified_effect(
    treated: np.ndarray, y: np.ndarray, strata: np.ndarray | None = None, confidence: float = CONFIDENCE,
    binary: bool = True,
) -> AverageEffect:
    """The ATE pooled over strata (campaign waves): each stratum's difference weighted by its rows.

    Waves are randomised separately and may differ in who was targeted and when, so the pooled
    effect is the post-stratified one (the wave as a covariate); a stratum without both arms is
    left out. With one stratum this is `average_treatment_effect` (binary) or Welch's difference
    in means (`binary=False`, e.g. a follow-up score).

    Args:
        treated: 0/1 arm per row.
        y: outcome per row (0/1 when `binary`).
        strata: stratum (wave) per row; None means one stratum.
        confidence: interval level.
        binary: the outcome is 0/1 (variance p(1-p)) rather than continuous (sample variance).
    Returns:
        The pooled effect, its standard error and interval; rates are the pooled arm means.
    """
    arm = np.asarray(treated) == 1
    y = np.asarray(y, float)
    strata = np.zeros(len(y), int) if strata is None else np.asarray(strata)
    parts = []
    both = np.zeros(len(y), bool)
    for value in pd.unique(strata):
        rows = strata == value
        t, c = rows & arm, rows & ~arm
        n1, n0 = int(t.sum()), int(c.sum())
        if n1 == 0 or n0 == 0:
            continue
        both |= rows
        p1, p0 = float(y[t].mean()), float(y[c].mean())
        if binary:
            v1, v0 = p1 * (1 - p1), p0 * (1 - p0)
        else:
            v1 = float(y[t].var(ddof=1)) if n1 > 1 else 0.0
            v0 = float(y[c].var(ddof=1)) if n0 > 1 else 0.0
        parts.append((n1 + n0, p1 - p0, v1 / n1 + v0 / n0))
    if not parts:
        raise ValueError("the ATE needs both a treated and a control group")
    weight = np.array([p[0] for p in parts], float) / sum(p[0] for p in parts)
    ate = float(np.sum(weight * [p[1] for p in parts]))
    se = float(np.sqrt(np.sum(weight ** 2 * [p[2] for p in parts])))
    z = float(norm.ppf(0.5 + confidence / 2))
    n1, n0 = int((arm & both).sum()), int((~arm & both).sum())
    return AverageEffect(ate, se, ate - z * se, ate + z * se, float(y[arm & both].mean()),
                         float(y[~arm & both].mean()), n1, n0)


@dataclass(frozen=True)
class CalibrationSlope:
    """How much of the predicted heterogeneity holds out of fold (1 = all of it, 0 = none)."""

    slope: float
    se: float


def heterogeneity_slope(effect: np.ndarray, treated: np.ndarray, y: np.ndarray) -> CalibrationSlope:
    """The BLP coefficient: OLS of y on 1, (T − p) and (T − p)·(τ̂ − mean τ̂) in a randomised sample.

    The coefficient of the last term is 1 when the out-of-fold effects τ̂ are calibrated and 0
    when their differences carry no signal; its standard error is heteroskedasticity-robust (HC1).

    Args:
        effect: out-of-fold predicted effects τ̂.
        treated: 0/1 arm per row.
        y: 0/1 outcome per row.
    Returns:
        The slope and its standard error (slope 0, se inf when τ̂ is constant).
    """
    t = np.asarray(treated, float)
    centred = np.asarray(effect, float) - np.mean(effect)
    if np.ptp(centred) <= 1e-12:
        return CalibrationSlope(0.0, float("inf"))
    design = np.column_stack([np.ones(len(t)), t - t.mean(), (t - t.mean()) * centred])
    coef, *_ = np.linalg.lstsq(design, np.asarray(y, float), rcond=None)
    residual = np.asarray(y, float) - design @ coef
    bread = np.linalg.pinv(design.T @ design)
    meat = (design * residual[:, None] ** 2).T @ design
    n, k = design.shape
    cov = bread @ meat @ bread * n / max(n - k, 1)
    return CalibrationSlope(float(coef[2]), float(np.sqrt(max(cov[2, 2], 0.0))))


def out_of_fold_effects(
    kind: str, X: np.ndarray, treated: np.ndarray, y: np.ndarray, categorical: list[int],
    seed: int, threads: int, folds: int = CV_FOLDS,
) -> np.ndarray:
    """Each row's predicted effect from a learner fitted without it (folds stratified by arm × outcome).

    Args:
        kind: "t" or "x".
        X, treated, y: the campaign rows.
        categorical: categorical column indices.
        seed: fold and LightGBM seed.
        threads: LightGBM threads.
        folds: number of folds.
    Returns:
        The out-of-fold effect per row.
    """
    strata = 2 * np.asarray(treated, int) + np.asarray(y, int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.zeros(len(y))
    for fit_rows, pred_rows in splitter.split(X, strata):
        learner = make_learner(kind, categorical, seed, threads).fit(X[fit_rows], treated[fit_rows], y[fit_rows])
        out[pred_rows] = learner.predict(X[pred_rows])
    return out


# ---------------------------------------------------------------------------------------------
# The learned effect of one strategy
# ---------------------------------------------------------------------------------------------


@dataclass
class UpliftResult:
    """What a campaign taught about one strategy; stored in the bundle, so it travels with the model.

    Effects are changes in P(churn) (negative = fewer churners). Qini / AUUC figures are
    out-of-fold, on retention (1 − churned) ranked by predicted benefit, per customer of the campaign.
    """

    strategy: str
    learner: str
    model: Any  # the chosen learner, refit on every campaign row
    n_treated: int
    n_control: int
    churn_treated: float
    churn_control: float
    ate: float
    ate_se: float
    ate_ci_low: float
    ate_ci_high: float
    qini: float  # Qini coefficient: area under the Qini curve minus the random line's
    qini_random: float
    auuc: float
    auuc_random: float
    cv_qini: dict[str, float] = field(default_factory=dict)
    heterogeneity: float = 0.0  # BLP slope of the out-of-fold effects (before clipping)
    heterogeneity_se: float = float("inf")
    shrinkage: float = 0.0  # the slope clipped to [0, 1]: the share of τ̂'s differences kept
    effect_center: float = 0.0  # mean τ̂ of the refit learner over the campaign rows
    ineffective: bool = False
    reason: str = ""
    # Whether churn was learned (False: the campaign recorded follow-up scores only; churn stays simulated).
    churn_learned: bool = True
    waves: int = 1  # campaign waves pooled (the ATE is post-stratified by wave)
    # The learned effect on the score (follow-up survey answers of treated vs control); NaN when not learned.
    score_learned: bool = False
    score_n_treated: int = 0
    score_n_control: int = 0
    score_treated: float = float("nan")  # mean follow-up score of the treated
    score_control: float = float("nan")
    score_ate: float = float("nan")  # change in the expected score (positive = happier)
    score_ate_se: float = float("nan")
    score_ci_low: float = float("nan")
    score_ci_high: float = float("nan")
    top_ate: float = float("nan")  # change in P(top band)
    top_ate_se: float = float("nan")
    top_ci_low: float = float("nan")
    top_ci_high: float = float("nan")
    score_ineffective: bool = False
    score_reason: str = ""

    @property
    def proven_ineffective(self) -> bool:
        """Every outcome a campaign measured shows no benefit: credited nothing under every objective."""
        learned = [flag for flag, on in ((self.ineffective, self.churn_learned),
                                         (self.score_ineffective, self.score_learned)) if on]
        return bool(learned) and all(learned)

    def score_effects(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The learned change in expected score and in P(top band) per customer (the ATE for each).

        A strategy not proven to raise the score (CI includes 0, or harmful) is credited no gain:
        min(ATE, 0), as is one whose every measured outcome showed no benefit.

        Args:
            n: number of customers.
        Returns:
            (delta expected score, delta P(top band)), each of length n.
        """
        score, top = self.score_ate, self.top_ate
        if self.score_ineffective or self.proven_ineffective:
            score, top = min(score, 0.0), min(top, 0.0)
        return np.full(n, score), np.full(n, top)

    def predict_effect(self, X: np.ndarray) -> np.ndarray:
        """The learned change in P(churn) per customer: ATE + shrinkage·(τ̂(x) − mean τ̂).

        An ineffective strategy is credited no benefit: max(ATE, 0) for everyone.

        Args:
            X: encoded features (the bundle's pipeline).
        Returns:
            The effect per row.
        """
        if self.ineffective or self.proven_ineffective:
            return np.full(len(X), max(self.ate, 0.0))
        if self.shrinkage == 0.0:
            return np.full(len(X), self.ate)
        return self.ate + self.shrinkage * (np.asarray(self.model.predict(X), float) - self.effect_center)

    def summary(self) -> dict[str, Any]:
        """Every reported figure, without the fitted model (JSON-ready)."""
        row = {k: v for k, v in asdict(self).items() if k != "model"}
        row["method"] = "learned" if self.churn_learned else "simulated"
        row["churn_method"] = row["method"]
        row["score_method"] = "learned" if self.score_learned else "simulated"
        row["proven_ineffective"] = self.proven_ineffective
        return row


def fit_uplift(
    strategy: str,
    X: np.ndarray,
    treated: np.ndarray,
    churned: np.ndarray,
    categorical: list[int],
    seed: int = 42,
    threads: int = 2,
    folds: int = CV_FOLDS,
    confidence: float = CONFIDENCE,
    wave: np.ndarray | None = None,
) -> UpliftResult:
    """Learn one strategy's effect from its randomised campaign rows.

    Both learners are scored by the out-of-fold Qini coefficient; the better is refit on all rows.

    Args:
        strategy: the strategy id.
        X: encoded features of the campaign customers (the bundle's pipeline).
        treated: 0/1 arm per row.
        churned: 0/1 churn outcome per row.
        categorical: categorical column indices of X.
        seed: fold and LightGBM seed.
        threads: LightGBM threads.
        folds: cross-validation folds.
        confidence: level of the ATE interval.
        wave: campaign wave per row (the ATE is post-stratified by it); None means one wave.
    Returns:
        The fitted result with its ATE, Qini / AUUC against random, and the ineffective flag.
    """
    treated = np.asarray(treated, int)
    churned = np.asarray(churned, int)
    effect = stratified_effect(treated, churned, wave, confidence)
    if min(effect.n_treated, effect.n_control) < MIN_ARM_ROWS:
        raise ValueError(
            f"strategy '{strategy}': {effect.n_treated} treated and {effect.n_control} control rows; "
            f"an uplift model needs at least {MIN_ARM_ROWS} in each arm"
        )
    retained = 1 - churned
    oof: dict[str, np.ndarray] = {}
    cv_qini: dict[str, float] = {}
    for kind in LEARNERS:
        oof[kind] = out_of_fold_effects(kind, X, treated, churned, categorical, seed, threads, folds)
        cv_qini[kind] = uplift_curves(-oof[kind], treated, retained).qini_coefficient
    chosen = max(LEARNERS, key=lambda k: cv_qini[k])
    curves = uplift_curves(-oof[chosen], treated, retained)
    model = make_learner(chosen, categorical, seed, threads).fit(X, treated, churned)
    blp = heterogeneity_slope(oof[chosen], treated, churned)
    ineffective = effect.ci_high >= 0.0
    interval = f"({confidence:.0%} CI {effect.ci_low:+.3f} to {effect.ci_high:+.3f})"
    if effect.ci_low > 0.0:
        reason = f"harmful: churn rises by {effect.ate:+.3f} {interval}"
    elif ineffective:
        reason = f"indistinguishable from no effect: {effect.ate:+.3f} {interval} includes 0"
    else:
        reason = f"effective: churn falls by {-effect.ate:.3f} {interval}"
    return UpliftResult(
        strategy=strategy,
        learner=chosen,
        model=model,
        n_treated=effect.n_treated,
        n_control=effect.n_control,
        churn_treated=effect.rate_treated,
        churn_control=effect.rate_control,
        ate=effect.ate,
        ate_se=effect.se,
        ate_ci_low=effect.ci_low,
        ate_ci_high=effect.ci_high,
        qini=curves.qini_coefficient,
        qini_random=curves.qini_random,
        auuc=curves.auuc,
        auuc_random=curves.auuc_random,
        cv_qini=cv_qini,
        heterogeneity=blp.slope,
        heterogeneity_se=blp.se,
        shrinkage=float(np.clip(blp.slope, 0.0, 1.0)),
        effect_center=float(np.mean(model.predict(X))),
        ineffective=ineffective,
        reason=reason,
        waves=1 if wave is None else int(pd.Series(wave).nunique()),
    )


def score_only_result(strategy: str, waves: int = 1) -> UpliftResult:
    """A result for a strategy whose campaigns recorded follow-up scores but no churn (churn stays simulated)."""
    nan = float("nan")
    return UpliftResult(strategy=strategy, learner="", model=None, n_treated=0, n_control=0, churn_treated=nan,
                        churn_control=nan, ate=nan, ate_se=nan, ate_ci_low=nan, ate_ci_high=nan, qini=nan,
                        qini_random=nan, auuc=nan, auuc_random=nan, churn_learned=False, waves=waves,
                        reason="no churn outcome in its campaigns: churn effect simulated")


def with_score_effect(
    result: UpliftResult, treated: np.ndarray, score: np.ndarray, top: np.ndarray, wave: np.ndarray | None = None,
    confidence: float = CONFIDENCE,
) -> UpliftResult:
    """The result with its learned effect on the score, from follow-up survey answers of both arms.

    The effect on the expected score is the (wave-stratified) difference in mean follow-up scores,
    and the effect on P(top band) the difference in top-band shares, each with a normal interval.
    A strategy whose score interval does not lie wholly above zero is flagged score-ineffective.

    Args:
        result: the strategy's result (churn learned or `score_only_result`).
        treated: 0/1 arm of the rows with a follow-up score.
        score: their follow-up score.
        top: 1 where that score is in the top band.
        wave: their campaign wave.
        confidence: interval level.
    Returns:
        A new result with the score fields set.
    """
    effect = stratified_effect(treated, score, wave, confidence, binary=False)
    top_effect = stratified_effect(treated, top, wave, confidence, binary=True)
    interval = f"({confidence:.0%} CI {effect.ci_low:+.2f} to {effect.ci_high:+.2f})"
    if effect.ci_high < 0.0:
        reason = f"harmful: the score falls by {-effect.ate:.2f} {interval}"
    elif effect.ci_low <= 0.0:
        reason = f"indistinguishable from no effect: {effect.ate:+.2f} {interval} includes 0"
    else:
        reason = f"effective: the score rises by {effect.ate:.2f} {interval}"
    return replace(
        result, score_learned=True, score_n_treated=effect.n_treated, score_n_control=effect.n_control,
        score_treated=effect.rate_treated, score_control=effect.rate_control, score_ate=effect.ate,
        score_ate_se=effect.se, score_ci_low=effect.ci_low, score_ci_high=effect.ci_high, top_ate=top_effect.ate,
        top_ate_se=top_effect.se, top_ci_low=top_effect.ci_low, top_ci_high=top_effect.ci_high,
        score_ineffective=bool(effect.ci_low <= 0.0), score_reason=reason,
    )


def uplift_report(uplift: Mapping[str, UpliftResult]) -> pd.DataFrame:
    """One row per learned strategy: arms, ATE and CI, Qini / AUUC vs random, learner, ineffective flag.

    Args:
        uplift: strategy id -> result (a bundle's `uplift`).
    Returns:
        The report, ordered by strategy id.
    """
    rows = []
    for strategy_id in sorted(uplift):
        row = uplift[strategy_id].summary()
        cv = row.pop("cv_qini")
        row.update({f"cv_qini_{k}": v for k, v in cv.items()})
        rows.append(row)
    columns = [
        "strategy", "method", "churn_method", "score_method",
        "learner", "n_treated", "n_control", "churn_treated", "churn_control", "ate",
        "ate_se", "ate_ci_low", "ate_ci_high", "ineffective", "reason", "qini", "qini_random", "auuc",
        "auuc_random", *(f"cv_qini_{k}" for k in LEARNERS), "heterogeneity", "heterogeneity_se", "shrinkage",
        "waves", "score_n_treated", "score_n_control", "score_treated", "score_control", "score_ate", "score_ate_se",
        "score_ci_low", "score_ci_high", "top_ate", "top_ci_low", "top_ci_high", "score_ineffective", "score_reason",
        "proven_ineffective",
    ]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=columns) if rows else pd.DataFrame(columns=columns)

