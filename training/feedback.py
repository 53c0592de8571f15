"""A new survey wave arrives: how well did the current model predict those customers, and should it retrain?

The wave is scored with the model that was current before it (the champion), measured with
the backtest's metrics (overall and per segment), logged to MLflow, and appended as one row to
a history table beside the config, with a plot of the history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.features.load import DataError, Dataset, check_ids, check_score
from cxpredict.models.bundle import band_column, predict_uncertainty
from cxpredict.models.conformal import interval_coverage, set_coverage
from cxpredict.models.registry import FEEDBACK_ARTIFACT, TAG_MODEL_VERSION, TAG_RETRAIN_ADVISED, LoadedBundle
from cxpredict.training import evaluate
from cxpredict.training.registry import configure_mlflow

HISTORY_FILE = "feedback_history.csv"
PLOT_FILE = "feedback_history.png"
MIN_SEGMENT_ROWS = 20


@dataclass
class FeedbackResult:
    """What a wave says about the model: its metrics, per segment, the history and the advice."""

    wave: str
    metrics: dict[str, float]
    segments: pd.DataFrame
    history: pd.DataFrame
    retrain: bool
    reason: str
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None


def read_wave(config: CxConfig, dataset: Dataset, path: Path) -> pd.DataFrame:
    """The wave's answers, checked like the survey: known ids, scores on the scale.

    Args:
        config: the dataset config.
        dataset: the customers the ids must belong to.
        path: CSV or Parquet with the id column and the score column.
    Returns:
        The wave rows.
    """
    if not path.is_file():
        raise DataError(f"{path}: survey wave file not found")
    wave = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if wave.empty:
        raise DataError(f"{path}: the survey wave has no rows")
    wave = check_score(check_ids(wave.rename(columns=config.rename), config.id_column, str(path)), config, str(path))
    known = wave[config.id_column].isin(dataset.customers[config.id_column].astype(str))
    if not known.all():
        first = wave.loc[~known, config.id_column].iloc[0]
        raise DataError(f"{path}: column '{config.id_column}': id '{first}' is not in the customers table")
    return wave


def wave_metrics(config: CxConfig, loaded: LoadedBundle, customers: pd.DataFrame,
                 scores: np.ndarray) -> dict[str, float]:
    """Band metrics, expected-score MAE and conformal coverage of the model on answered customers.

    Args:
        config: the dataset config.
        loaded: the model current before the wave.
        customers: the wave's customer rows.
        scores: their observed scores.
    Returns:
        Metrics named as in the backtest (`log_loss`, `macro_f1`, ...).
    """
    bundle = loaded.bundle
    predictions = bundle.predict(customers, threads=config.training.threads)
    names = bundle.band_names
    band_probs = predictions[[band_column(b) for b in names]].to_numpy(float)
    band_true = np.array([names.index(config.score.band_of(int(s))) for s in scores])
    m = evaluate.band_metrics(band_probs, band_true, "")
    m["expected_score_mae"] = evaluate.expected_score_mae(predictions["expected_score"].to_numpy(), scores)
    top, bottom = names.index(bundle.top_band), names.index(bundle.bottom_band)
    m["index_observed"] = evaluate.index_from_bands(band_true, top, bottom)
    m["index_predicted"] = float(100 * (band_probs[:, top] - band_probs[:, bottom]).mean())
    uncertainty = predict_uncertainty(bundle, customers, predictions, threads=config.training.threads)
    if len(uncertainty.columns):
        in_set = np.column_stack([uncertainty["prediction_set"].str.split(";").apply(lambda s, b=b: b in s)
                                  for b in names])
        m["conformal_coverage"] = set_coverage(in_set, band_true)
        m["interval_coverage"] = interval_coverage(uncertainty["expected_score_low"].to_numpy(),
                                                   uncertainty["expected_score_high"].to_numpy(), scores)
    m["n_answers"] = float(len(scores))
    return m


def retrain_advice(config: CxConfig, loaded: LoadedBundle, metrics: dict[str, float],
                   history: pd.DataFrame) -> tuple[bool, str]:
    """Advise retraining when the wave's log loss is worse than the reference by more than the threshold.

    The reference is the model's held-out log loss at training (`test_log_loss`), else the first
    wave this model version was measured on.
    """
    threshold = config.trust.retrain_log_loss_increase
    reference = loaded.bundle.metadata.get("metrics", {}).get("test_log_loss")
    source = "held-out respondents at training"
    if reference is None:
        same = history[history["model_version"].astype(str) == str(loaded.version)]
        if same.empty:
            return False, "first wave for this model: it becomes the reference"
        reference, source = float(same["log_loss"].iloc[0]), f"wave '{same['wave'].iloc[0]}'"
    ratio = metrics["log_loss"] / reference - 1
    if ratio > threshold:
        return True, f"log loss {metrics['log_loss']:.3f} is {ratio:+.0%} vs {reference:.3f} ({source}): retrain"
    return False, f"log loss {metrics['log_loss']:.3f} is {ratio:+.0%} vs {reference:.3f} ({source}): no retrain needed"


def plot_history(history: pd.DataFrame, out: Path) -> Path:
    """Log loss, macro-F1 and conformal coverage per wave, one marker per wave."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in ("log_loss", "macro_f1", "conformal_coverage") if c in history.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        ax.plot(history["wave"].astype(str), history[column], marker="o")
        ax.set_title(column)
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def record_feedback(config: CxConfig, loaded: LoadedBundle, dataset: Dataset, survey: Path,
                    by: str | None = None, history_path: Path | None = None,
                    log_to_mlflow: bool = True) -> FeedbackResult:
    """Measure the current model on a new survey wave, append the history and advise on retraining.

    Args:
        config: the dataset config.
        loaded: the model current before the wave (usually the champion).
        dataset: the customers (the wave's ids must be among them).
        survey: the wave's answers (CSV or Parquet: id column and score column).
        by: customers' column for per-segment metrics (default: `segment` if present).
        history_path: history CSV (default: feedback_history.csv beside the config).
        log_to_mlflow: log the wave as an MLflow run.
    Returns:
        The wave's metrics, per-segment metrics, the whole history and the advice.
    """
    wave = read_wave(config, dataset, survey)
    id_column = config.id_column
    customers = dataset.customers.assign(**{id_column: dataset.customers[id_column].astype(str)})
    customers = customers.set_index(id_column, drop=False).loc[wave[id_column]].reset_index(drop=True)
    scores = wave[config.score.column].to_numpy(int)
    metrics = wave_metrics(config, loaded, customers, scores)
    by = by if by is not None else ("segment" if "segment" in customers.columns else None)
    segment_rows = []
    if by is not None:
        if by not in customers.columns:
            raise DataError(f"{dataset.sources.get('customers', 'customers')}: no column '{by}' to segment by")
        for value, rows in customers.groupby(customers[by].astype(str)).groups.items():
            rows = np.asarray(list(rows))
            if len(rows) >= MIN_SEGMENT_ROWS:
                seg = wave_metrics(config, loaded, customers.iloc[rows], scores[rows])
                segment_rows.append({"segment": value, **seg})
    segments = pd.DataFrame(segment_rows)

    history_path = history_path or config.base_dir / HISTORY_FILE
    history = pd.read_csv(history_path) if history_path.is_file() else pd.DataFrame()
    retrain, reason = retrain_advice(config, loaded, metrics, history if len(history) else
                                     pd.DataFrame(columns=["model_version", "log_loss", "wave"]))
    row = {"wave": survey.stem, "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "model_version": loaded.version, **metrics, "retrain_advised": retrain}
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    history_path.parent.mkdir(parents=True, exist_ok=True)
    history.to_csv(history_path, index=False)
    plot = plot_history(history, history_path.with_name(PLOT_FILE))
    result = FeedbackResult(survey.stem, metrics, segments, history, retrain, reason,
                            {"history": history_path, "plot": plot})
    if log_to_mlflow:
        configure_mlflow(config)
        with mlflow.start_run(run_name=f"feedback-{config.name}-{survey.stem}") as run:
            mlflow.set_tags({TAG_MODEL_VERSION: loaded.version, TAG_RETRAIN_ADVISED: str(retrain)})
            mlflow.log_metrics({f"feedback_{k}": v for k, v in metrics.items() if np.isfinite(v)})
            for seg in segment_rows:
                mlflow.log_metrics({f"feedback_{k}_{seg['segment']}": v for k, v in seg.items()
                                    if k in ("log_loss", "macro_f1") and np.isfinite(v)})
            mlflow.log_artifact(str(plot))
            mlflow.log_dict({"reason": reason, "segments": segment_rows}, FEEDBACK_ARTIFACT)
            result.run_id = run.info.run_id
    return result
