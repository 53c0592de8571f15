"""Key-driver analysis: global and per-segment SHAP driver tables and plots from a stratified sample.

Tables come from a stated stratified sample (strata: segment × surveyed/silent), with every
population figure weighted by N_h/n_h and its standard error shown, so a base of millions is
summarised in seconds; per-customer explanations are only made where asked (`score --explain`).
Outputs: `drivers_global.csv`, `drivers_segments.csv`, `sample.csv`, `summary.json` and PNG plots,
also logged as artifacts of an `explain-<name>` MLflow run tagged with the explained model.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cxpredict.features.build import BOOLEAN, CATEGORICAL
from cxpredict.features.config import CxConfig
from cxpredict.features.load import Dataset
from cxpredict.features.progress import StepProgress, no_progress
from cxpredict.models.explain import (
    DriverExplainer,
    ExplainError,
    Explanation,
    Target,
    default_targets,
    resolve_targets,
)
from cxpredict.models.key_drivers import KeyDriverAnalysis, KeyDriverError, key_drivers
from cxpredict.models.registry import (
    DRIVERS_DIR,
    DRIVERS_GLOBAL_ARTIFACT,
    DRIVERS_KEY_ARTIFACT,
    DRIVERS_SAMPLE_ARTIFACT,
    DRIVERS_SEGMENTS_ARTIFACT,
    DRIVERS_SHAP_SUMMARY_ARTIFACT,
    DRIVERS_SUMMARY_ARTIFACT,
    DRIVERS_SURVEY_TREND_ARTIFACT,
    KIND_EXPLAIN,
    PARAM_SEGMENT,
    TAG_EXPLAINED_VERSION,
    TAG_KIND,
    TAG_MODEL_NAME,
    TAG_MODEL_RUN_ID,
    LoadedBundle,
    drivers_file,
    metric_name,
)
from cxpredict.training.registry import configure_mlflow

logger = logging.getLogger(__name__)
DEFAULT_SAMPLE_SIZE = 20_000
MIN_SEGMENT_SIZE = 30
MAX_SEGMENTS = 30
MIN_PER_STRATUM = 200
TOP_FEATURES_PLOTTED = 12
DEPENDENCE_PLOTS = 3
BEESWARM_ROWS = 2_000
HIGHLIGHTED_FEATURES = 3
DIRECTION_THRESHOLD = 0.1
NOTE_ASSOCIATION = (
    "SHAP drivers describe how the model's predictions move with each customer column. They are "
    "associations learned from the data, not proven causes: changing a column will not necessarily "
    "change the customer's experience or churn. Test an action (a randomised campaign) before "
    "attributing an effect to it."
)


@dataclass
class DriverSample:
    """A stratified sample of customers: positions in the customers table and N_h/n_h weights."""

    positions: np.ndarray
    weights: np.ndarray
    strata: np.ndarray
    strata_table: pd.DataFrame
    population: int
    seed: int
    basis: str = "surveyed/silent"

    @property
    def is_census(self) -> bool:
        return len(self.positions) == self.population

    def describe(self) -> str:
        """One sentence stating how the sample was drawn."""
        if self.is_census:
            return f"all {self.population:,} customers (census: no sampling error)"
        return (
            f"stratified random sample of {len(self.positions):,} of {self.population:,} customers "
            f"({len(self.strata_table)} strata: {self.basis}, proportional allocation with at "
            f"least {MIN_PER_STRATUM} per stratum, seed {self.seed}); population figures are weighted by "
            "N_h/n_h and shown with their standard error"
        )


def stratified_sample(strata: pd.Series, size: int, seed: int, min_per_stratum: int = MIN_PER_STRATUM) -> DriverSample:
    """Draw a stratified random sample without replacement.

    Args:
        strata: one stratum label per customer (index ignored; positions are 0..N-1).
        size: target sample size; the whole population when it is not larger.
        seed: random seed.
        min_per_stratum: each stratum gets at least this many rows (or all of them).
    Returns:
        The sample with its positions, weights and per-stratum counts.
    """
    labels = strata.astype(str).to_numpy()
    population = len(labels)
    rng = np.random.default_rng(seed)
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if population <= size:
        allocation = counts.copy()
    else:
        allocation = np.maximum(np.round(size * counts / population).astype(int), np.minimum(counts, min_per_stratum))
        allocation = np.minimum(allocation, counts)
    positions, weights, chosen_strata = [], [], []
    for h, name in enumerate(names):
        members = np.flatnonzero(inverse == h)
        n_h = int(allocation[h])
        take = members if n_h == len(members) else np.sort(rng.choice(members, size=n_h, replace=False))
        positions.append(take)
        weights.append(np.full(n_h, counts[h] / n_h))
        chosen_strata.append(np.full(n_h, name, dtype=object))
    order = np.argsort(np.concatenate(positions), kind="stable")
    table = pd.DataFrame({"stratum": names, "population": counts, "sampled": allocation})
    return DriverSample(
        positions=np.concatenate(positions)[order],
        weights=np.concatenate(weights)[order],
        strata=np.concatenate(chosen_strata)[order],
        strata_table=table,
        population=population,
        seed=seed,
    )


def segment_labels(customers: pd.DataFrame, column: str, min_size: int, source: str = "customers") -> pd.Series:
    """The segment of each customer, checked: the column exists, few values, none too small.

    Args:
        customers: the customers table.
        column: the segment column.
        min_size: the smallest segment allowed (customers).
        source: the table's name for messages.
    Returns:
        Segment labels as text ("missing" for empty values).
    """
    if column not in customers.columns:
        raise ExplainError(f"{source}: segment column '{column}' not found; columns are {list(customers.columns)}")
    labels = customers[column].astype("string").fillna("missing").astype(str)
    counts = labels.value_counts()
    if len(counts) > MAX_SEGMENTS:
        raise ExplainError(
            f"{source}: segment column '{column}' has {len(counts)} distinct values; "
            f"choose a column with at most {MAX_SEGMENTS}"
        )
    if len(counts) < 2:
        raise ExplainError(f"{source}: segment column '{column}' has a single value; nothing to compare")
    small = counts[counts < min_size]
    if len(small):
        raise ExplainError(
            f"{source}: column '{column}': segment '{small.index[0]}' has {int(small.iloc[0])} customers, below "
            f"the minimum of {min_size} (--min-segment-size)"
        )
    return labels


def _stratified_mean_se(values: np.ndarray, strata: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified estimate of the population mean of each column and its standard error.

    mean = Σ_h W_h ȳ_h and SE² = Σ_h W_h² (1 − n_h/N_h) s_h²/n_h with W_h = N_h/N, N_h = n_h·weight.
    """
    names = np.unique(strata)
    total = weights.sum()
    mean = np.zeros(values.shape[1])
    var = np.zeros(values.shape[1])
    for name in names:
        rows = strata == name
        n_h = int(rows.sum())
        N_h = float(weights[rows].sum())
        W_h = N_h / total
        y = values[rows]
        mean += W_h * y.mean(axis=0)
        if n_h > 1:
            fpc = max(0.0, 1.0 - n_h / N_h)
            var += W_h**2 * fpc * y.var(axis=0, ddof=1) / n_h
    return mean, np.sqrt(var)


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(x)
    if ok.sum() < 3 or np.unique(x[ok]).size < 2:
        return float("nan")
    x, y, w = x[ok], y[ok], w[ok]
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.average((x - mx) * (y - my), weights=w)
    sx, sy = np.sqrt(np.average((x - mx) ** 2, weights=w)), np.sqrt(np.average((y - my) ** 2, weights=w))
    return float(cov / (sx * sy)) if sx > 0 and sy > 0 else float("nan")


def describe_direction(x: np.ndarray, shap: np.ndarray, w: np.ndarray, kind: str,
                       categories: tuple[str, ...] = ()) -> tuple[str, float]:
    """How higher values (or which categories) move the prediction, in words, and the correlation.

    Args:
        x: the feature's encoded values; shap: its contributions; w: sample weights.
        kind: the feature kind; categories: for categoricals, the code → text list.
    Returns:
        (text, weighted correlation of value and contribution; NaN for categoricals).
    """
    if kind == CATEGORICAL:
        ok = np.isfinite(x)
        if not ok.any():
            return "mixed", float("nan")
        codes = x[ok].astype(int)
        sums = np.bincount(codes, weights=w[ok] * shap[ok], minlength=len(categories))
        mass = np.bincount(codes, weights=w[ok], minlength=len(categories))
        means = np.where(mass > 0, sums / np.maximum(mass, 1e-300), np.nan)
        if np.all(np.isnan(means)):
            return "mixed", float("nan")
        high, low = int(np.nanargmax(means)), int(np.nanargmin(means))
        parts = []
        if means[high] > 0:
            parts.append(f"raises: {categories[high] if high < len(categories) else high}")
        if means[low] < 0:
            parts.append(f"lowers: {categories[low] if low < len(categories) else low}")
        return ("; ".join(parts) or "mixed"), float("nan")
    corr = _weighted_corr(x, shap, w)
    subject = "yes" if kind == BOOLEAN else "higher"
    if np.isnan(corr) or abs(corr) < DIRECTION_THRESHOLD:
        return "mixed", corr
    return (f"{subject} raises" if corr > 0 else f"{subject} lowers"), corr


def business_effect(explanation: Explanation, rows: np.ndarray, sample: DriverSample) -> tuple[np.ndarray, str]:
    """Each feature's mean effect in business units: percentage points of the probability, or score points.

    For a probability explained in log-odds, the effect of feature j on a customer is how far the
    probability would move without j's contribution, |σ(f) − σ(f − φ_j)|·100; its stratified mean
    reads "moves P(detractor) by 3.1 points on average". Scores and ratings are already in points.
    """
    values = explanation.values[rows]
    weights = sample.weights[rows]
    if explanation.target.space != "log-odds":
        moved = np.abs(values)
        unit = "score points" if explanation.target.name == "expected_score" else "rating points"
    else:
        output = explanation.output[rows][:, None]
        moved = 100 * np.abs(_sigmoid(output) - _sigmoid(output - values))
        unit = f"pp of {explanation.target.label}"
    mean, _ = _stratified_mean_se(moved, sample.strata[rows], weights)
    return mean, unit


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def driver_table(explanation: Explanation, rows: np.ndarray, sample: DriverSample,
                 categories: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """One target's driver table over some sampled rows: mean |SHAP| ± SE, share, direction, rank.

    Args:
        explanation: the target's explanation of the sampled rows.
        rows: boolean mask of the sampled rows to summarise (all, or one segment).
        sample: the sample (strata and weights).
        categories: category lists of categorical features.
    Returns:
        Features sorted by mean |SHAP|, with rank 1 the strongest driver.
    """
    values = explanation.values[rows]
    weights = sample.weights[rows]
    mean_abs, se = _stratified_mean_se(np.abs(values), sample.strata[rows], weights)
    mean_signed, _ = _stratified_mean_se(values, sample.strata[rows], weights)
    total = mean_abs.sum()
    effect, unit = business_effect(explanation, rows, sample)
    directions = [
        describe_direction(explanation.matrix[rows, j], values[:, j], weights, explanation.kinds[j],
                           categories.get(name, ()))
        for j, name in enumerate(explanation.feature_names)
    ]
    table = pd.DataFrame({
        "target": explanation.target.name,
        "feature": explanation.feature_names,
        "kind": explanation.kinds,
        "mean_abs_shap": mean_abs,
        "se_mean_abs_shap": se,
        "mean_shap": mean_signed,
        "share": mean_abs / total if total > 0 else np.zeros_like(mean_abs),
        "direction": [d[0] for d in directions],
        "direction_corr": [d[1] for d in directions],
        "space": explanation.target.space,
        "effect": effect,
        "effect_unit": unit,
    })
    table = table.sort_values(["mean_abs_shap", "feature"], ascending=[False, True], kind="stable")
    table.insert(2, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def highlight_rank_differences(segment_table: pd.DataFrame, top: int = HIGHLIGHTED_FEATURES) -> pd.DataFrame:
    """Add `rank_spread` (max − min rank over segments) and flag the features whose rank differs most.

    Only features in the top 10 of at least one segment can be highlighted (a shuffle at the
    bottom of the table is noise, not a difference worth an analyst's time).
    """
    out = segment_table.copy()
    spread = out.groupby(["target", "feature"])["rank"].agg(lambda r: int(r.max() - r.min()))
    best = out.groupby(["target", "feature"])["rank"].min()
    out["rank_spread"] = [spread[(t, f)] for t, f in zip(out["target"], out["feature"], strict=True)]
    out["highlight"] = False
    for target, group in spread.groupby(level=0):
        eligible = group[(best.loc[group.index] <= 10) & (group >= 2)]
        chosen = eligible.sort_values(ascending=False, kind="stable").head(top)
        mask = (out["target"] == target) & out["feature"].isin([f for _, f in chosen.index])
        out.loc[mask, "highlight"] = True
    return out


@dataclass
class DriversResult:
    """Everything `explain` computed: the sample, the tables and the sampled rows' explanations."""

    dataset: str
    model_name: str
    model_version: str
    model_run_id: str
    targets: list[Target]
    sample: DriverSample
    global_table: pd.DataFrame
    segment_column: str | None = None
    segment_table: pd.DataFrame | None = None
    segments: np.ndarray | None = None
    explanations: dict[str, Explanation] = field(default_factory=dict)
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    key_drivers: KeyDriverAnalysis | None = None
    key_drivers_note: str | None = None  # why there is no key-driver analysis, when there is none
    survey_trend: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: model, sample, top drivers per target, additivity check."""
        top = {
            t.name: self.global_table[self.global_table["target"] == t.name].head(5)[
                ["feature", "mean_abs_shap", "se_mean_abs_shap", "share", "direction"]
            ].to_dict(orient="records")
            for t in self.targets
        }
        return {
            "dataset": self.dataset,
            "model": {"name": self.model_name, "version": self.model_version, "run_id": self.model_run_id},
            "sample": {"description": self.sample.describe(), "size": int(len(self.sample.positions)),
                       "population": self.sample.population, "seed": self.sample.seed},
            "segment_column": self.segment_column,
            "targets": [{"name": t.name, "explains": t.output_column, "space": t.space, "label": t.label}
                        for t in self.targets],
            "additivity_max_error": {k: e.additivity_error for k, e in self.explanations.items()},
            "top_drivers": top,
            "key_drivers": None if self.key_drivers is None else {
                "score": self.key_drivers.score, "attributes": list(self.key_drivers.attributes),
                "bootstrap": self.key_drivers.bootstrap, "seed": self.key_drivers.seed,
                "fix_first": self.key_drivers.fix_first(), "skipped_segments": dict(self.key_drivers.skipped),
            },
            "key_drivers_note": self.key_drivers_note,
            "note": NOTE_ASSOCIATION,
        }


def compute_drivers(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, segment: str | None = None,
    targets: list[str] | None = None, sample_size: int = DEFAULT_SAMPLE_SIZE,
    min_segment_size: int = MIN_SEGMENT_SIZE, seed: int | None = None,
) -> DriversResult:
    """Explain a stratified sample of customers and build the global and per-segment tables.

    Args:
        config: the dataset config.
        loaded: the champion (or a chosen version) bundle.
        dataset: the customers and survey.
        segment: a customers column to compare segments by.
        targets: target names (all when None).
        sample_size: customers to explain for the tables (all when the base is not larger).
        min_segment_size: smallest segment allowed.
        seed: sampling seed (default: training.seed).
    Returns:
        The tables, the sample and its explanations.
    """
    bundle = loaded.bundle
    resolved = resolve_targets(bundle, targets)
    if sample_size < 1:
        raise ExplainError(f"--sample must be at least 1, got {sample_size}")
    customers = dataset.customers
    source = dataset.sources.get("customers", "customers")
    segments = segment_labels(customers, segment, min_segment_size, source) if segment else None
    surveyed = customers[config.id_column].astype(str).isin(dataset.survey[config.id_column].astype(str))
    status = np.where(surveyed.to_numpy(), "surveyed", "silent")
    strata = pd.Series(status if segments is None else segments.to_numpy() + " | " + status)
    seed = config.training.seed if seed is None else seed
    sample = stratified_sample(strata, sample_size, seed)
    sample.basis = "surveyed/silent" if segment is None else f"{segment} × surveyed/silent"
    rows = customers.iloc[sample.positions]
    explanations = DriverExplainer(bundle, config.training.threads).explain_matrix(
        bundle.pipeline.transform(rows), resolved
    )
    categories = {s.name: s.categories for s in bundle.pipeline.specs_ if s.kind == CATEGORICAL}
    everyone = np.ones(len(sample.positions), bool)
    global_table = pd.concat([driver_table(explanations[t.name], everyone, sample, categories) for t in resolved],
                             ignore_index=True)
    segment_table = None
    sampled_segments = None
    if segments is not None:
        sampled_segments = segments.to_numpy()[sample.positions]
        parts = []
        for value in sorted(np.unique(sampled_segments)):
            in_segment = sampled_segments == value
            for t in resolved:
                table = driver_table(explanations[t.name], in_segment, sample, categories)
                table.insert(1, "segment", value)
                table.insert(2, "segment_customers", int(sample.weights[in_segment].sum().round()))
                table.insert(3, "segment_sampled", int(in_segment.sum()))
                parts.append(table)
        segment_table = highlight_rank_differences(pd.concat(parts, ignore_index=True))
    analysis, note = rated_key_drivers(config, dataset, segment, seed)
    return DriversResult(
        dataset=config.name, model_name=loaded.model_name, model_version=loaded.version,
        model_run_id=loaded.run_id, targets=resolved, sample=sample, global_table=global_table,
        segment_column=segment, segment_table=segment_table, segments=sampled_segments,
        explanations=explanations, categories=categories, key_drivers=analysis, key_drivers_note=note,
        survey_trend=survey_trend(config, dataset),
    )


def rated_key_drivers(config: CxConfig, dataset: Dataset, segment: str | None = None,
                      seed: int | None = None) -> tuple[KeyDriverAnalysis | None, str | None]:
    """The key-driver analysis of the survey's rated attributes (the config's `drivers`), on respondents.

    Returns:
        (analysis, None), or (None, why) when the survey has fewer than two rated attributes or the
        respondents cannot support one; the SHAP tables never depend on it.
    """
    if len(config.drivers) < 2:
        return None, "the config names fewer than two driver ratings (`drivers:`), so there is no key-driver chart"
    survey = dataset.survey
    segments = None
    if segment is not None:
        by_id = dataset.customers.set_index(dataset.customers[config.id_column].astype(str))[segment]
        segments = pd.Series(by_id.reindex(survey[config.id_column].astype(str)).to_numpy(), name=segment)
    try:
        analysis = key_drivers(survey, config.score.column, config.drivers, segments,
                               seed=config.training.seed if seed is None else seed)
    except KeyDriverError as err:
        logger.warning("no key-driver analysis: %s", err)
        return None, f"no key-driver analysis: {err}"
    return analysis, None


def survey_trend(config: CxConfig, dataset: Dataset) -> pd.DataFrame | None:
    """Observed score per survey month (the waves): respondents, band shares and the index 100·(top − bottom).

    The survey's date column is `survey_date_column` in the config, or else the one survey column
    whose name ends in `date`; without one there is no trend.
    """
    survey = dataset.survey
    column = config.survey_date_column or next((c for c in survey.columns if str(c).lower().endswith("date")), None)
    if column is None or column not in survey.columns:
        return None
    dates = pd.to_datetime(survey[column], errors="coerce")
    bands = survey[config.score.column].map(config.score.band_of)
    frame = pd.DataFrame({"wave": dates.dt.to_period("M").astype(str), "band": bands})[dates.notna().to_numpy()]
    if frame.empty:
        return None
    top, bottom = config.score.top_band, config.score.bottom_band
    grouped = frame.groupby("wave")["band"]
    out = pd.DataFrame({
        "respondents": grouped.size(),
        f"share_{top}": grouped.apply(lambda b: float((b == top).mean())),
        f"share_{bottom}": grouped.apply(lambda b: float((b == bottom).mean())),
    })
    out["observed_index"] = 100 * (out[f"share_{top}"] - out[f"share_{bottom}"])
    return out.reset_index()


def write_drivers(result: DriversResult, out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Write the tables, the sample description, the summary and every plot into `out_dir`.

    Args:
        result: from `compute_drivers`.
        out_dir: the folder (created).
        plots: draw the plots too (most of the time this takes).
    Returns:
        Name → path of every file written (plots under `plots/`).
    """
    from cxpredict.training import driver_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["drivers_global"] = out_dir / drivers_file(DRIVERS_GLOBAL_ARTIFACT)
    result.global_table.to_csv(files["drivers_global"], index=False)
    if result.segment_table is not None:
        files["drivers_segments"] = out_dir / drivers_file(DRIVERS_SEGMENTS_ARTIFACT)
        result.segment_table.to_csv(files["drivers_segments"], index=False)
    files["sample"] = out_dir / drivers_file(DRIVERS_SAMPLE_ARTIFACT)
    result.sample.strata_table.to_csv(files["sample"], index=False)
    if result.key_drivers is not None:
        files["key_drivers"] = out_dir / drivers_file(DRIVERS_KEY_ARTIFACT)
        result.key_drivers.table.to_csv(files["key_drivers"], index=False)
    if result.survey_trend is not None:
        files["survey_trend"] = out_dir / drivers_file(DRIVERS_SURVEY_TREND_ARTIFACT)
        result.survey_trend.to_csv(files["survey_trend"], index=False)
    files["summary"] = out_dir / drivers_file(DRIVERS_SUMMARY_ARTIFACT)
    files["summary"].write_text(json.dumps(result.summary(), indent=2, default=float))
    if plots:
        files.update(driver_plots.plot_drivers(result, out_dir / "plots"))
    result.files = files
    return files


def driver_metrics(result: DriversResult) -> dict[str, float]:
    """Mean |SHAP| per target and feature, and each target's additivity error, as MLflow metrics."""
    metrics = {
        metric_name(f"shap_mean_abs_{row.target}_{row.feature}"): float(row.mean_abs_shap)
        for row in result.global_table.itertuples()
    }
    metrics.update({f"shap_additivity_error_{k}": e.additivity_error for k, e in result.explanations.items()})
    return metrics


def training_driver_metrics(result: DriversResult, headline: list[str]) -> dict[str, float]:
    """The few SHAP figures a training run logs as metrics: additivity of the headline targets and the worst.

    Mean |SHAP| per target and feature (hundreds of values) goes into the run as the artifact
    `drivers/shap_summary.json` and the tables, not as metrics: a run's metrics stay the figures
    one compares runs by.
    """
    errors = {k: e.additivity_error for k, e in result.explanations.items()}
    metrics = {f"shap_additivity_error_{k}": v for k, v in errors.items() if k in headline}
    if errors:
        metrics["shap_additivity_error_max"] = float(max(errors.values()))
    return metrics


def shap_summary(result: DriversResult) -> dict[str, Any]:
    """Mean |SHAP| per target and feature, largest first, with the sample it was measured on."""
    table = result.global_table
    return {
        "sample_size": int(len(result.sample.positions)),
        "mean_abs_shap": {
            str(target): {str(r.feature): float(r.mean_abs_shap) for r in rows.itertuples()}
            for target, rows in table.groupby("target", sort=False)
        },
    }


def log_training_drivers(config: CxConfig, loaded: LoadedBundle, dataset: Dataset) -> None:
    """The new model's key-driver tables, in its training run (the active run).

    Data scientists comparing runs see which drivers each model leans on beside its accuracy;
    `cxpredict explain` remains the analysts' tool (plots, segments, bigger samples, a run of
    its own). Plots are left to it: they would cost more than the explanations themselves.
    """
    result = compute_drivers(config, loaded, dataset, sample_size=config.training.driver_sample)
    with tempfile.TemporaryDirectory() as tmp:
        write_drivers(result, Path(tmp), plots=False)
        (Path(tmp) / drivers_file(DRIVERS_SHAP_SUMMARY_ARTIFACT)).write_text(json.dumps(shap_summary(result), indent=2))
        mlflow.log_artifacts(tmp, artifact_path=DRIVERS_DIR)
    mlflow.log_metrics(training_driver_metrics(result, default_targets(loaded.bundle)))


def log_drivers(config: CxConfig, result: DriversResult, out_dir: Path) -> str:
    """Log the tables and plots as artifacts of a new `explain-<name>` run tagged with the model.

    A run of its own (not the training run) keeps the training record immutable and lets an
    analyst explain the same model several times (other segments, samples) without overwriting.

    Returns:
        The explain run's id.
    """
    configure_mlflow(config)
    tags = {TAG_KIND: KIND_EXPLAIN, TAG_MODEL_NAME: result.model_name,
            TAG_EXPLAINED_VERSION: result.model_version, TAG_MODEL_RUN_ID: result.model_run_id}
    with mlflow.start_run(run_name=f"explain-{config.name}", tags=tags) as run:
        mlflow.log_params({
            "model_version": result.model_version, PARAM_SEGMENT: result.segment_column or "",
            "sample_size": len(result.sample.positions), "population": result.sample.population,
            "seed": result.sample.seed, "targets": ",".join(t.name for t in result.targets),
        })
        mlflow.log_metrics(driver_metrics(result))
        mlflow.log_artifacts(str(out_dir), artifact_path=DRIVERS_DIR)
        result.run_id = run.info.run_id
    return run.info.run_id


def explain_drivers(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, out_dir: Path, segment: str | None = None,
    targets: list[str] | None = None, sample_size: int = DEFAULT_SAMPLE_SIZE,
    min_segment_size: int = MIN_SEGMENT_SIZE, seed: int | None = None, log_to_mlflow: bool = True,
    progress: StepProgress = no_progress,
) -> DriversResult:
    """Compute, write and log the key-driver analysis (what `cxpredict explain` runs).

    Args:
        config, loaded, dataset: the dataset config, the bundle and the tables.
        out_dir: where tables and plots go.
        segment, targets, sample_size, min_segment_size, seed: see `compute_drivers`.
        log_to_mlflow: log everything as artifacts of an `explain-` run.
        progress: told as each stage (SHAP values, tables and plots, MLflow) starts and ends.
    Returns:
        The result, with `files` and `run_id` set.
    """
    steps = 2 + log_to_mlflow
    progress(f"SHAP values for up to {sample_size:,} customers", 0, steps)
    result = compute_drivers(config, loaded, dataset, segment, targets, sample_size, min_segment_size, seed)
    progress(f"tables and plots for {len(result.targets)} targets", 1, steps)
    write_drivers(result, out_dir)
    if log_to_mlflow:
        progress("logging to MLflow", 2, steps)
        log_drivers(config, result, out_dir)
    progress("done", steps, steps)
    return result
