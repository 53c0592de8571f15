"""Backtest: hide most respondents, train on the rest, and measure predictions on the hidden ones.

This answers "how well does it predict customers who did not answer?" with held-out truth:
the hidden respondents play the silent customers. Selection of the kept respondents can be
random or biased (kept respondents skew towards satisfied customers through their operational
data, as real response does), so the value of bias correction is measured, not assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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

from features.build import CATEGORICAL, FeaturePipeline
from features.config import CxConfig
from features.load import DataError, Dataset
from models.bundle import band_column, cause_column, driver_column
from models.estimators import BINARY, base_params, binary_probability, fit_booster, predict_raw
from training import evaluate
from training.train import Trainer, configure_mlflow, respondent_targets

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


def biased_keep_probability(customers: pd.DataFrame, pipeline: FeaturePipeline, X: np.ndarray,
                            band_index: np.ndarray, positions: np.ndarray) -> np.ndarray:
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
    corr = np.array([np.corrcoef(z[:, k], band_index)[0, 1] for k in range(z.shape[1])])
    corr = np.nan_to_num(corr)
    top = np.argsort(-np.abs(corr))[:BIAS_FEATURES]
    score = (z[:, top] * np.sign(corr[top])).sum(axis=1) / np.sqrt(len(top))
    weight = np.exp(1.2 * np.clip(score, -3, 3))
    return weight / weight.sum()


def kept_respondents(config: CxConfig, dataset: Dataset, trainer_pipeline: FeaturePipeline, X: np.ndarray,
                     n_keep: int, selection: Selection, rng: np.random.Generator) -> np.ndarray:
    """Positions (in survey order) of the respondents kept for training."""
    n = len(dataset.survey)
    if selection == "random":
        return np.sort(rng.choice(n, size=n_keep, replace=False))
    targets = respondent_targets(config, dataset)
    p = biased_keep_probability(dataset.customers, trainer_pipeline, X, targets.band_index, targets.positions)
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
    # NaN codes become their own category (-1) so unseen and missing values stay distinguishable.
    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1),
                              OneHotEncoder(handle_unknown="ignore")), cat),
    ])
    model = make_pipeline(encode, LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    return float(f1_score(y_test, predicted, labels=np.arange(n_bands), average="macro", zero_division=0))


def churn_cross_validation(config: CxConfig, trainer: Trainer, churn_params: dict | None) -> dict[str, float]:
    """5-fold churn ROC/PR AUC from operational columns only: tuned settings vs untuned LightGBM."""
    outcomes = trainer.dataset.outcomes
    if outcomes is None or config.churn is None:
        return {}
    position_of = pd.Series(np.arange(len(trainer.dataset.customers)),
                            index=trainer.dataset.customers[config.id_column])
    X = trainer.X[position_of.loc[outcomes[config.id_column]].to_numpy()]
    y = outcomes[config.churn.column].to_numpy(int)
    t = config.training
    untuned = {**base_params(BINARY, 1, t.seed, t.threads)}
    untuned.update({"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20, "feature_fraction": 1.0,
                    "bagging_fraction": 1.0, "bagging_freq": 0, "lambda_l2": 0.0})
    settings = {"untuned": (untuned, 100)}
    if churn_params is not None:
        settings["tuned"] = churn_params
    out: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=CHURN_CV_FOLDS, shuffle=True, random_state=t.seed)
    for label, (params, rounds) in settings.items():
        p = np.zeros(len(y))
        for fit_rows, pred_rows in folds.split(X, y):
            booster = fit_booster(X[fit_rows], y[fit_rows], params, trainer.categorical, rounds)
            p[pred_rows] = binary_probability(predict_raw(booster, X[pred_rows], t.threads))
        out[f"churn_cv_roc_auc_{label}"] = evaluate.safe_auc(y, p)
        out[f"churn_cv_pr_auc_{label}"] = evaluate.safe_pr_auc(y, p)
    return out


def tune_churn_params(config: CxConfig, trainer: Trainer, tune_trials: int | None) -> tuple[dict, int] | None:
    """Tune the churn model on operational columns only (no predicted experience)."""
    from training.train import fit_target

    outcomes = trainer.dataset.outcomes
    if outcomes is None or config.churn is None:
        return None
    position_of = pd.Series(np.arange(len(trainer.dataset.customers)),
                            index=trainer.dataset.customers[config.id_column])
    X = trainer.X[position_of.loc[outcomes[config.id_column]].to_numpy()]
    y = outcomes[config.churn.column].to_numpy(int)
    fitted = fit_target("churn", BINARY, X, y, None, np.zeros(len(y), bool), trainer.categorical, config,
                        tune_trials=tune_trials, log_trials=False)
    return fitted.tuned.params, fitted.tuned.num_boost_round


def evaluate_repeat(config: CxConfig, dataset: Dataset, kept: np.ndarray, tune_trials: int | None,
                    seed: int) -> tuple[dict[str, float], Trainer]:
    """Train on the kept respondents and measure everything on the hidden ones."""
    repeat_config = config.model_copy(update={"training": config.training.model_copy(update={"seed": seed})})
    train_set = subset_survey(dataset, kept)
    trainer = Trainer(repeat_config, train_set, tune_trials=tune_trials, holdout_fraction=0.0, log_trials=False)
    bundle = trainer.fit(include_churn=False)

    all_targets = respondent_targets(config, dataset)
    hidden = np.ones(len(dataset.survey), bool)
    hidden[kept] = False
    hidden_pos = all_targets.positions[hidden]
    predicted = bundle.predict_matrix(trainer.X[hidden_pos], config.training.threads)
    names = config.score.band_names
    band_probs = np.column_stack([predicted[band_column(b)] for b in names])
    y_band = all_targets.band_index[hidden]
    m = evaluate.band_metrics(band_probs, y_band, "")
    observed = np.asarray(config.score.levels)[all_targets.level_index[hidden]]
    m["expected_score_mae"] = evaluate.expected_score_mae(predicted["expected_score"], observed)

    kept_bands = all_targets.band_index[kept]
    majority = np.bincount(kept_bands, minlength=len(names)).argmax()
    m["baseline_majority_macro_f1"] = float(
        f1_score(y_band, np.full(len(y_band), majority), labels=np.arange(len(names)), average="macro", zero_division=0)
    )
    m["baseline_logistic_macro_f1"] = logistic_baseline_f1(
        trainer.pipeline, trainer.X[all_targets.positions[kept]], kept_bands, trainer.X[hidden_pos], y_band,
        len(names), seed,
    )

    top, bottom = names.index(config.score.top_band), names.index(config.score.bottom_band)
    true_index = evaluate.index_from_bands(all_targets.band_index, top, bottom)
    naive = evaluate.index_from_bands(kept_bands, top, bottom)

    def completed_index(probs: np.ndarray) -> float:
        p_top = np.concatenate([(kept_bands == top).astype(float), probs[:, top]])
        p_bottom = np.concatenate([(kept_bands == bottom).astype(float), probs[:, bottom]])
        return float(100 * (p_top.mean() - p_bottom.mean()))

    m["population_index_true"] = true_index
    m["population_error_respondents_only"] = abs(naive - true_index)
    m["population_error_model"] = abs(completed_index(band_probs) - true_index)
    if trainer.respondent_weight is not None:
        # The same score model without inverse-propensity weights: what bias correction buys.
        trainer.respondent_weight = None
        unweighted, temperature = trainer.fit_score()
        bundle.score_booster, bundle.score_temperature = unweighted, temperature
        plain = bundle.predict_matrix(trainer.X[hidden_pos], config.training.threads)
        plain_probs = np.column_stack([plain[band_column(b)] for b in names])
        m["population_error_model_unweighted"] = abs(completed_index(plain_probs) - true_index)
    if trainer.respondent_propensity is not None:
        ipw = evaluate.index_from_bands(kept_bands, top, bottom, 1.0 / trainer.respondent_propensity)
        m["population_error_ipw"] = abs(ipw - true_index)
        m["propensity_adversarial_auc"] = trainer.metrics.get("propensity_adversarial_auc", float("nan"))

    if dataset.causes is not None:
        aucs = []
        for code in bundle.cause_boosters:
            y = dataset.causes[code].to_numpy(int)[hidden]
            auc = evaluate.safe_auc(y, predicted[cause_column(code)])
            m[f"cause_auc_{code}"] = auc
            aucs.append(auc)
        if aucs:
            m["cause_auc_mean"] = float(np.nanmean(aucs))
    for driver in bundle.driver_boosters:
        values = dataset.survey[driver].to_numpy(float)[hidden]
        rated = np.isfinite(values)
        m[f"driver_mae_{driver}"] = float(np.mean(np.abs(predicted[driver_column(driver)][rated] - values[rated])))
    return m, trainer


def backtest(
    config: CxConfig,
    dataset: Dataset,
    survey_rate: float,
    repeats: int = 3,
    seed: int = 0,
    selection: Selection = "biased",
    tune_trials: int | None = None,
    log_to_mlflow: bool = True,
) -> BacktestReport:
    """Hide all but `survey_rate` × customers respondents, train, and score the hidden ones.

    Args:
        config: the dataset config.
        dataset: the loaded tables.
        survey_rate: share of all customers kept as respondents for training.
        repeats: independent hide/train/evaluate rounds.
        seed: seed of the hiding draws and of training.
        selection: `random` or `biased` choice of the kept respondents.
        tune_trials: tuning budget per model (defaults to the config's).
        log_to_mlflow: log the summary as a run of the dataset's experiment.
    Returns:
        Per-repeat metrics and their summary.
    """
    n_customers, n_respondents = len(dataset.customers), len(dataset.survey)
    n_keep = int(round(survey_rate * n_customers))
    if not 0 < survey_rate < 1:
        raise DataError(f"--survey-rate must be between 0 and 1, got {survey_rate}")
    if n_keep >= n_respondents:
        raise DataError(
            f"{dataset.sources.get('survey', 'survey')}: survey rate {survey_rate} keeps {n_keep} respondents but "
            f"only {n_respondents} exist; choose a rate below {n_respondents / n_customers:.4f}"
        )
    if n_keep < config.training.min_respondents:
        raise DataError(
            f"survey rate {survey_rate} keeps {n_keep} respondents; the score model needs at least "
            f"{config.training.min_respondents} (training.min_respondents)"
        )
    report = BacktestReport(survey_rate=survey_rate, selection=selection, repeats=repeats)
    rng = np.random.default_rng(seed)
    full_pipeline = FeaturePipeline(config.id_column, exclude=[*config.features.exclude,
                                    *([config.value_column] if config.value_column else [])],
                                    categorical=config.features.categorical).fit(dataset.customers)
    X_full = full_pipeline.transform(dataset.customers)
    churn_metrics: dict[str, float] = {}
    for r in range(repeats):
        kept = kept_respondents(config, dataset, full_pipeline, X_full, n_keep, selection, rng)
        metrics, trainer = evaluate_repeat(config, dataset, kept, tune_trials, seed + r)
        if r == 0:
            tuned = tune_churn_params(config, trainer, tune_trials)
            churn_metrics = churn_cross_validation(config, trainer, tuned)
        report.per_repeat.append({**metrics, **churn_metrics})
        logger.info("backtest repeat %d/%d done", r + 1, repeats)
    if log_to_mlflow:
        configure_mlflow(config)
        with mlflow.start_run(run_name=f"backtest-{config.name}-{selection}-{survey_rate}") as run:
            mlflow.log_params({"survey_rate": survey_rate, "selection": selection, "repeats": repeats, "seed": seed,
                               "tune_trials": tune_trials or config.training.tune_trials})
            summary = report.summary()
            mlflow.log_metrics({f"backtest_{k}": v["mean"] for k, v in summary.items() if np.isfinite(v["mean"])})
            mlflow.log_dict(report.to_dict(), "backtest.json")
            report.run_id = run.info.run_id
    return report

