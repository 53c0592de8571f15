"""Backtest: hide most respondents, train on the rest, and measure predictions on the hidden ones.

This answers "how well does it predict customers who did not answer?" with held-out truth:
the respondents are treated as a customer base of their own, and the hidden ones play its
silent customers (so the propensity model, the weights and the population figures work
exactly as in production). Selection of the kept respondents can be
random or biased (kept respondents skew towards satisfied customers through their operational
data, as real response does), so the value of bias correction is measured, not assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cxpredict.features.build import CATEGORICAL, FeaturePipeline
from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset
from cxpredict.features.progress import StepProgress, no_progress
from cxpredict.features.text_features import uses_texts, with_text_features
from cxpredict.models.bundle import band_column, cause_column, driver_column
from cxpredict.models.estimators import BINARY, base_params, binary_probability, fit_booster, predict_raw
from cxpredict.models.registry import BACKTEST_ARTIFACT
from cxpredict.training import evaluate
from cxpredict.training.conformal import coverage_metrics
from cxpredict.training.registry import configure_mlflow
from cxpredict.training.train import FitOptions, fit_models, fit_score, fit_target, respondent_targets, score_population

logger = logging.getLogger(__name__)
Selection = Literal["random", "biased"]
CHURN_CV_FOLDS = 5
BIAS_FEATURES = 3


@dataclass
class BacktestReport:
    survey_rate: float
    selection: str
    repeats: int
    per_repeat: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and standard deviation of each metric over the repeats."""
        frame = pd.DataFrame(self.per_repeat)
        return {m: {"mean": float(frame[m].mean()), "std": float(frame[m].std(ddof=0))} for m in frame.columns}

    def to_dict(self) -> dict:
        return {
            "survey_rate": self.survey_rate,
            "selection": self.selection,
            "repeats": self.repeats,
            "run_id": self.run_id,
            "metrics": self.summary(),
            "per_repeat": self.per_repeat,
        }


def biased_keep_probability(pipeline: FeaturePipeline, X: np.ndarray, band_index: np.ndarray,
                            positions: np.ndarray) -> np.ndarray:
    """Selection weights that favour happier respondents through their operational data only.

    The numeric features most correlated with the band steer selection, so selection is at
    random given the features (what a propensity model can correct), yet clearly biased.
    """
    numeric = [j for j, s in enumerate(pipeline.specs_) if s.kind != CATEGORICAL]
    Xr = X[positions][:, numeric]
    filled = np.where(np.isnan(Xr), np.nanmean(Xr, axis=0), Xr)
    std = filled.std(axis=0)
    usable = std > 0
    z = (filled[:, usable] - filled[:, usable].mean(axis=0)) / std[usable]
    corr = np.nan_to_num(np.array([np.corrcoef(z[:, k], band_index)[0, 1] for k in range(z.shape[1])]))
    top = np.argsort(-np.abs(corr))[:BIAS_FEATURES]
    score = (z[:, top] * np.sign(corr[top])).sum(axis=1) / np.sqrt(len(top))
    weight = np.exp(1.2 * np.clip(score, -3, 3))
    return weight / weight.sum()


def respondents_as_base(config: CxConfig, dataset: Dataset) -> Dataset:
    """The respondents as a customer base of their own: hidden respondents become its silent customers."""
    ids = dataset.survey[config.id_column]
    customers = dataset.customers[dataset.customers[config.id_column].isin(ids)].reset_index(drop=True)
    return Dataset(customers=customers, survey=dataset.survey, outcomes=None, campaigns=None,
                   causes=dataset.causes, cause_codes=dataset.cause_codes, sources=dataset.sources)


def kept_respondents(config: CxConfig, respondents: Dataset, pipeline: FeaturePipeline, X: np.ndarray,
                     n_keep: int, selection: Selection, rng: np.random.Generator) -> np.ndarray:
    """Positions (in survey order) of the respondents kept for training."""
    n = len(respondents.survey)
    if selection == "random":
        return np.sort(rng.choice(n, size=n_keep, replace=False))
    targets = respondent_targets(config, respondents)
    p = biased_keep_probability(pipeline, X, targets.band_index, targets.positions)
    return np.sort(rng.choice(n, size=n_keep, replace=False, p=p))


def subset_survey(dataset: Dataset, rows: np.ndarray) -> Dataset:
    causes = None if dataset.causes is None else dataset.causes.iloc[rows].reset_index(drop=True)
    return Dataset(
        customers=dataset.customers,
        survey=dataset.survey.iloc[rows].reset_index(drop=True),
        outcomes=dataset.outcomes,
        campaigns=dataset.campaigns,
        causes=causes,
        cause_codes=dataset.cause_codes,
        sources=dataset.sources,
    )


def logistic_baseline_f1(pipeline: FeaturePipeline, X_train: np.ndarray, y_train: np.ndarray,
                         X_test: np.ndarray, y_test: np.ndarray, n_bands: int, seed: int) -> float:
    """Macro-F1 of a one-hot + standardised logistic regression: the baseline to beat."""
    cat = pipeline.categorical_indices_
    num = [j for j in range(X_train.shape[1]) if j not in cat]
    # Missing codes become their own category (-1) so unseen and missing values stay distinguishable.
    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1),
                              OneHotEncoder(handle_unknown="ignore")), cat),
    ])
    model = make_pipeline(encode, LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    return float(f1_score(y_test, predicted, labels=np.arange(n_bands), average="macro", zero_division=0))


def churn_rows(config: CxConfig, dataset: Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Feature rows and churn labels of the customers with outcomes."""
    if dataset.outcomes is None or config.churn is None:
        return None
    position_of = pd.Series(np.arange(len(dataset.customers)), index=dataset.customers[config.id_column])
    rows = position_of.loc[dataset.outcomes[config.id_column]].to_numpy()
    return X[rows], dataset.outcomes[config.churn.column].to_numpy(int)


def churn_cross_validation(config: CxConfig, X: np.ndarray, y: np.ndarray, categorical: list[int],
                           tune_trials: int | None) -> dict[str, float]:
    """5-fold churn ROC/PR AUC from operational columns only: tuned settings vs untuned LightGBM.

    The tuned settings come from an Optuna search on the table; the folds then refit both
    settings, so the comparison with the untuned default is like for like.
    """
    t = config.training
    fitted = fit_target("churn", BINARY, X, y, None, np.zeros(len(y), bool), categorical, config,
                        tune_trials=tune_trials, log_trials=False)
    untuned = {**base_params(BINARY, 1, t.seed, t.threads)}
    untuned.update({"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20, "feature_fraction": 1.0,
                    "bagging_fraction": 1.0, "bagging_freq": 0, "lambda_l2": 0.0})
    settings = {"untuned": (untuned, 100), "tuned": (fitted.tuned.params, fitted.tuned.num_boost_round)}
    out: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=CHURN_CV_FOLDS, shuffle=True, random_state=t.seed)
    for label, (params, rounds) in settings.items():
        p = np.zeros(len(y))
        for fit_rows, pred_rows in folds.split(X, y):
            booster = fit_booster(X[fit_rows], y[fit_rows], params, categorical, rounds)
            p[pred_rows] = binary_probability(predict_raw(booster, X[pred_rows], t.threads))
        out[f"churn_cv_roc_auc_{label}"] = evaluate.safe_auc(y, p)
        out[f"churn_cv_pr_auc_{label}"] = evaluate.safe_pr_auc(y, p)
    return out


def evaluate_repeat(config: CxConfig, respondents: Dataset, kept: np.ndarray, tune_trials: int | None,
                    seed: int) -> dict[str, float]:
    """Train on the kept respondents and measure everything on the hidden ones."""
    repeat_config = config.model_copy(update={"training": config.training.model_copy(update={"seed": seed})})
    # The base is the respondents only: the other customers' texts are out of scope (counted in the notes).
    kept_survey = with_text_features(repeat_config, subset_survey(respondents, kept), outside="skip")
    fitted = fit_models(repeat_config, kept_survey, tune_trials=tune_trials,
                        holdout_fraction=0.0, log_trials=False, include_churn=False)
    bundle, X = fitted.bundle, fitted.data.X

    all_targets = respondent_targets(config, respondents)
    hidden = np.ones(len(respondents.survey), bool)
    hidden[kept] = False
    hidden_pos = all_targets.positions[hidden]
    predicted = bundle.predict_matrix(X[hidden_pos], config.training.threads)
    names = config.score.band_names
    band_probs = np.column_stack([predicted[band_column(b)] for b in names])
    y_band = all_targets.band_index[hidden]
    m = evaluate.band_metrics(band_probs, y_band, "")
    observed = np.asarray(config.score.levels)[all_targets.level_index[hidden]]
    m["expected_score_mae"] = evaluate.expected_score_mae(predicted["expected_score"], observed)
    # The hidden respondents are the silent customers: does the conformal coverage hold for them?
    m.update(coverage_metrics(bundle, X[hidden_pos], band_probs, predicted["expected_score"], y_band,
                              observed, threads=config.training.threads))

    kept_bands = all_targets.band_index[kept]
    majority = np.bincount(kept_bands, minlength=len(names)).argmax()
    m["baseline_majority_macro_f1"] = float(
        f1_score(y_band, np.full(len(y_band), majority), labels=np.arange(len(names)), average="macro", zero_division=0)
    )
    m["baseline_logistic_macro_f1"] = logistic_baseline_f1(
        fitted.data.pipeline, X[all_targets.positions[kept]], kept_bands, X[hidden_pos], y_band, len(names), seed,
    )

    top, bottom = names.index(config.score.top_band), names.index(config.score.bottom_band)
    true_index = evaluate.index_from_bands(all_targets.band_index, top, bottom)
    m["population_index_true"] = true_index
    population = fitted.population
    estimates = {
        "respondents_only": population.respondents,
        "ipw": population.ipw,
        "model": population.model,
        "doubly_robust": population.doubly_robust,
    }
    for label, estimate in estimates.items():
        if estimate is not None:
            m[f"population_error_{label}"] = abs(estimate - true_index)
    if fitted.respondent_weight is not None:
        # The same score model without inverse-propensity weights: what weighted training buys.
        unweighted = fit_score(fitted.data, None, FitOptions(tune_trials=tune_trials, log_trials=False))
        unweighted_bundle = replace(bundle, score_booster=unweighted.booster,
                                    score_temperature=float(unweighted.calibration))
        figures = score_population(fitted.data, unweighted_bundle, unweighted, fitted.propensity)
        m["population_error_model_unweighted"] = abs(figures.model - true_index)
    m["propensity_adversarial_auc"] = fitted.metrics.get("propensity_adversarial_auc", float("nan"))

    if respondents.causes is not None:
        aucs = []
        for code in bundle.cause_boosters:
            y = respondents.causes[code].to_numpy(int)[hidden]
            auc = evaluate.safe_auc(y, predicted[cause_column(code)])
            m[f"cause_auc_{code}"] = auc
            aucs.append(auc)
        if aucs:
            m["cause_auc_mean"] = float(np.nanmean(aucs))
    for driver in bundle.driver_boosters:
        values = respondents.survey[driver].to_numpy(float)[hidden]
        rated = np.isfinite(values)
        m[f"driver_mae_{driver}"] = float(np.mean(np.abs(predicted[driver_column(driver)][rated] - values[rated])))
    if uses_texts(config):
        m.update(without_text_metrics(repeat_config, respondents, kept, hidden_pos, y_band, tune_trials))
    return m


def without_text_metrics(config: CxConfig, respondents: Dataset, kept: np.ndarray, hidden_pos: np.ndarray,
                         y_band: np.ndarray, tune_trials: int | None) -> dict[str, float]:
    """The same repeat trained without texts: the hidden respondents' band figures as `without_text_*`,
    beside the with-text ones, so the report shows what the texts buy."""
    plain = config.model_copy(update={"codeframe": None})
    fitted = fit_models(plain, subset_survey(respondents, kept), tune_trials=tune_trials, holdout_fraction=0.0,
                        log_trials=False, include_churn=False)
    predicted = fitted.bundle.predict_matrix(fitted.data.X[hidden_pos], config.training.threads)
    band_probs = np.column_stack([predicted[band_column(b)] for b in config.score.band_names])
    return evaluate.band_metrics(band_probs, y_band, "without_text_")


def backtest(
    config: CxConfig,
    dataset: Dataset,
    survey_rate: float,
    repeats: int = 3,
    seed: int = 0,
    selection: Selection = "biased",
    tune_trials: int | None = None,
    log_to_mlflow: bool = True,
    progress: StepProgress = no_progress,
) -> BacktestReport:
    """Treat the respondents as the base, keep `survey_rate` of them surveyed, and score the rest.

    Args:
        config: the dataset config.
        dataset: the loaded tables.
        survey_rate: share of the respondents kept as surveyed for training; the rest are hidden.
        repeats: independent hide/train/evaluate rounds.
        seed: seed of the hiding draws and of training.
        selection: `random` or `biased` choice of the kept respondents.
        tune_trials: tuning budget per model (defaults to the config's).
        log_to_mlflow: log the summary as a run of the dataset's experiment.
        progress: told when the churn cross-validation and each repeat start and end.
    Returns:
        Per-repeat metrics and their summary.
    """
    if not 0 < survey_rate < 1:
        raise DataError(f"--survey-rate must be between 0 and 1, got {survey_rate}")
    n_respondents = len(dataset.survey)
    n_keep = int(round(survey_rate * n_respondents))
    if n_keep < config.training.min_respondents:
        raise DataError(
            f"{dataset.sources.get('survey', 'survey')}: survey rate {survey_rate} keeps {n_keep} of "
            f"{n_respondents} respondents; the score model needs at least {config.training.min_respondents} "
            "(training.min_respondents)"
        )
    report = BacktestReport(survey_rate=survey_rate, selection=selection, repeats=repeats)
    rng = np.random.default_rng(seed)
    exclude = [*config.features.exclude, *([config.value_column] if config.value_column else [])]
    full_pipeline = FeaturePipeline(config.id_column, exclude, config.features.categorical).fit(dataset.customers)
    respondents = respondents_as_base(config, dataset)
    X_respondents = full_pipeline.transform(respondents.customers)
    churn_metrics: dict[str, float] = {}
    churn = churn_rows(config, dataset, full_pipeline.transform(dataset.customers))
    before = int(churn is not None)  # the churn cross-validation is one step before the repeats
    steps = before + repeats
    if churn is not None:
        progress("churn: 5-fold cross-validation", 0, steps)
        churn_metrics = churn_cross_validation(config, *churn, full_pipeline.categorical_indices_, tune_trials)
    for r in range(repeats):
        progress(f"repeat {r + 1}/{repeats}: train on {n_keep} kept respondents", before + r, steps)
        kept = kept_respondents(config, respondents, full_pipeline, X_respondents, n_keep, selection, rng)
        metrics = evaluate_repeat(config, respondents, kept, tune_trials, seed + r)
        report.per_repeat.append({**metrics, **churn_metrics})
        logger.info("backtest repeat %d/%d done", r + 1, repeats)
    progress("done", steps, steps)
    if log_to_mlflow:
        configure_mlflow(config)
        with mlflow.start_run(run_name=f"backtest-{config.name}-{selection}-{survey_rate}") as run:
            mlflow.log_params({"survey_rate": survey_rate, "selection": selection, "repeats": repeats, "seed": seed,
                               "tune_trials": tune_trials or config.training.tune_trials})
            summary = report.summary()
            mlflow.log_metrics({f"backtest_{k}": v["mean"] for k, v in summary.items() if np.isfinite(v["mean"])})
            mlflow.log_dict(report.to_dict(), BACKTEST_ARTIFACT)
            report.run_id = run.info.run_id
    return report

