"""The analyst report: one self-contained HTML page (images embedded as base64, no external files).

It gathers the champion's population score and interval (training metrics), the band mix of
surveyed vs predicted-silent customers, the top drivers per target with their plots, the driver
differences by segment, the latest backtest figures of the experiment (runs named `backtest-*`)
and the plain-language note that SHAP drivers are associations, not proven causes.
"""

from __future__ import annotations

import base64
import html
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cxpredict.features.config import CxConfig
from cxpredict.features.io import write_text_atomic
from cxpredict.features.load import Dataset
from cxpredict.features.progress import StepProgress, no_progress
from cxpredict.models.bundle import band_column
from cxpredict.models.registry import LoadedBundle, tracking_client, use_tracking_store
from cxpredict.training.drivers import NOTE_ASSOCIATION, DriversResult, compute_drivers, write_drivers

TOP_ROWS = 8
BACKTEST_METRICS = (
    ("band_accuracy", "band accuracy"), ("macro_f1", "macro-F1"), ("baseline_logistic_macro_f1", "logistic macro-F1"),
    ("expected_score_mae", "expected-score MAE"),
    ("population_error_doubly_robust", "population score error (doubly robust)"),
    ("population_error_model", "population score error (model-completed)"),
    ("population_error_respondents_only", "population score error (respondents only)"),
    ("cause_auc_mean", "cause AUC (mean)"), ("churn_cv_roc_auc_tuned", "churn ROC AUC (5-fold)"),
)


@dataclass
class ReportInputs:
    """What the report shows besides the drivers: model metrics, band mix, backtest."""

    metrics: dict[str, float]
    band_mix: pd.DataFrame
    backtest: dict[str, Any] | None


def band_mix(config: CxConfig, loaded: LoadedBundle, dataset: Dataset) -> pd.DataFrame:
    """Band shares: surveyed (observed answers) vs silent customers (mean predicted probabilities)."""
    bundle = loaded.bundle
    ids = dataset.customers[config.id_column].astype(str)
    surveyed_ids = set(dataset.survey[config.id_column].astype(str))
    silent = ~ids.isin(surveyed_ids).to_numpy()
    observed = dataset.survey[config.score.column].map(config.score.band_of)
    rows = []
    predicted = bundle.predict(dataset.customers[silent], threads=config.training.threads) if silent.any() else None
    for band in bundle.band_names:
        rows.append({
            "band": band,
            "surveyed (observed)": float((observed == band).mean()) if len(observed) else np.nan,
            "silent (predicted)": float(predicted[band_column(band)].mean()) if predicted is not None else np.nan,
        })
    frame = pd.DataFrame(rows)
    frame.attrs["n_surveyed"] = int(len(observed))
    frame.attrs["n_silent"] = int(silent.sum())
    return frame


def latest_backtest(config: CxConfig) -> dict[str, Any] | None:
    """The most recent `backtest-*` run of the dataset's experiment: its parameters and metrics."""
    use_tracking_store(config.tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name LIKE 'backtest-%'",
        order_by=["attributes.start_time DESC"], max_results=1, output_format="list",
    )
    if not runs:
        return None
    run = runs[0]
    return {"run_id": run.info.run_id, "run_name": run.info.run_name, "params": dict(run.data.params),
            "metrics": dict(run.data.metrics)}


def model_metrics(config: CxConfig, loaded: LoadedBundle) -> dict[str, float]:
    """Metrics of the run that trained the model (falling back to those saved in the bundle)."""
    metrics = dict(loaded.bundle.metadata.get("metrics", {}))
    if loaded.run_id:
        client = tracking_client(config.tracking_uri)
        metrics.update(client.get_run(loaded.run_id).data.metrics)
    return metrics


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, floats: str = "{:.4f}") -> str:
    return frame.to_html(index=False, border=0, classes="t", float_format=lambda v: floats.format(v), escape=True)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222;
padding:0 1em;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #1E88E5;padding-bottom:.2em;margin-top:2em}
.kpi{font-size:2.2em;font-weight:600}.muted{color:#666}.note{background:#FFF8E1;border-left:4px solid #FFB300;
padding:.8em 1em}table.t{border-collapse:collapse;margin:.5em 0;font-size:.9em}
table.t td,table.t th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
table.t td:first-child,table.t th:first-child{text-align:left}img{max-width:100%;margin:.4em 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}.hl{background:#E3F2FD}
"""


def render_report(config: CxConfig, loaded: LoadedBundle, drivers: DriversResult, inputs: ReportInputs) -> str:
    """The report as one HTML string (every image inlined).

    Args:
        config: the dataset config.
        loaded: the explained bundle.
        drivers: driver tables and plot files (`write_drivers` must have run).
        inputs: metrics, band mix and backtest.
    Returns:
        The HTML page.
    """
    m = inputs.metrics
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cxpredict report: {esc(config.name)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Customer experience drivers — {esc(config.name)}</h1>",
             f"<p class='muted'>model {esc(loaded.model_name)} version {esc(loaded.version)} (run "
             f"{esc(loaded.run_id)}), generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
             f"<div class='note'><b>Read this first.</b> {esc(NOTE_ASSOCIATION)}</div>"]

    parts.append("<h2>Population score</h2>")
    if "population_index" in m:
        low, high = m.get("population_index_ci_low", np.nan), m.get("population_index_ci_high", np.nan)
        parts.append(f"<p><span class='kpi'>{m['population_index']:+.1f}</span> &nbsp; 95 % interval "
                     f"[{low:+.1f}, {high:+.1f}] — 100·(P({esc(loaded.bundle.top_band)}) − "
                     f"P({esc(loaded.bundle.bottom_band)})) over every customer, doubly robust: the model's "
                     "prediction for everyone plus the propensity-weighted mean residual of the "
                     "respondents (out of fold).</p>")
        extra = [("respondents only (naive)", "population_index_respondents"),
                 ("respondents, propensity-weighted", "population_index_ipw"),
                 ("model-completed (observed for respondents, predicted for the silent)", "population_index_model"),
                 ("silent customers (predicted)", "population_index_silent"),
                 ("survey response adversarial AUC", "propensity_adversarial_auc")]
        rows = [(label, m[key]) for label, key in extra if key in m]
        if rows:
            parts.append(_table(pd.DataFrame(rows, columns=["figure", "value"]), "{:+.3f}"))
    else:
        parts.append("<p>The training run logged no population score.</p>")

    mix = inputs.band_mix
    parts.append("<h2>Band mix: surveyed vs predicted silent</h2>")
    if mix.attrs.get("n_silent", 0):
        parts.append(f"<p>{mix.attrs.get('n_surveyed', 0):,} surveyed customers (their answers) and "
                     f"{mix.attrs.get('n_silent', 0):,} silent customers (mean predicted probability). A gap "
                     "between the two columns is what the survey alone would get wrong.</p>")
    else:
        parts.append(f"<p>All {mix.attrs.get('n_surveyed', 0):,} customers answered the survey: there are no "
                     "silent customers to predict (use the backtest to see how predictions would do).</p>")
    parts.append(_table(mix, "{:.1%}"))

    parts.append("<h2>Top drivers per target</h2>")
    parts.append(f"<p>Computed on a {esc(drivers.sample.describe())}. Contributions add up exactly to each "
                 "customer's prediction in the space shown (log-odds for probabilities, points for scores); "
                 "the interval is ±1.96 standard errors of the sampled mean |SHAP|.</p>")
    columns = ["rank", "feature", "mean_abs_shap", "se_mean_abs_shap", "share", "direction"]
    for target in drivers.targets:
        table = drivers.global_table[drivers.global_table["target"] == target.name]
        parts.append(f"<h3>{esc(target.label)} <span class='muted'>({esc(target.space)})</span></h3>")
        parts.append(_table(table[columns].head(TOP_ROWS)))
        slug = target.name
        images = [drivers.files.get(f"bar_{slug}"), drivers.files.get(f"beeswarm_{slug}")]
        parts.append("<div class='grid'>" + "".join(_img(p, target.label) for p in images if p) + "</div>")
        deps = [p for k, p in drivers.files.items() if k.startswith(f"dependence_{slug}_")]
        if deps:
            parts.append("<div class='grid'>" + "".join(_img(p, target.label) for p in deps) + "</div>")

    if drivers.segment_table is not None:
        seg = drivers.segment_table
        parts.append(f"<h2>Driver differences by {esc(drivers.segment_column or '')}</h2>")
        parts.append("<p>Features whose rank differs most between segments are highlighted; the chart shows "
                     "each driver's share of the segment's total mean |SHAP|.</p>")
        for target in drivers.targets:
            hl = seg[(seg["target"] == target.name) & seg["highlight"]]
            parts.append(f"<h3>{esc(target.label)}</h3>")
            if len(hl):
                pivot = hl.pivot_table(index="feature", columns="segment", values="rank", aggfunc="first")
                pivot = pivot.reset_index()
                pivot.columns = [str(c) for c in pivot.columns]
                parts.append("<p>Rank of the highlighted drivers per segment:</p>" + _table(pivot, "{:.0f}"))
            else:
                parts.append("<p>No driver's rank differs by two places or more between segments.</p>")
            image = drivers.files.get(f"segments_{target.name}")
            if image:
                parts.append(_img(image, f"{target.label} by segment"))

    parts.append("<h2>Backtest</h2>")
    bt = inputs.backtest
    if bt is None:
        parts.append("<p>No backtest run in this experiment yet: run <code>cxpredict backtest --config ...</code> "
                     "to measure accuracy on respondents hidden from training.</p>")
    else:
        rows = [(label, bt["metrics"][f"backtest_{key}"]) for key, label in BACKTEST_METRICS
                if f"backtest_{key}" in bt["metrics"]]
        params = bt["params"]
        parts.append(f"<p>Run {esc(bt['run_name'])} ({esc(bt['run_id'])}): {esc(params.get('selection', '?'))} "
                     f"selection, survey rate {esc(params.get('survey_rate', '?'))}, {esc(params.get('repeats', '?'))} "
                     "repeats; figures on hidden respondents (mean over repeats).</p>")
        parts.append(_table(pd.DataFrame(rows, columns=["metric", "value"])))
    parts.append("<h2>What these drivers mean</h2>")
    parts.append(f"<div class='note'>{esc(NOTE_ASSOCIATION)}</div></body></html>")
    return "\n".join(parts)


def build_report(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, out: Path, segment: str | None = None,
    targets: list[str] | None = None, sample_size: int = 5_000, min_segment_size: int = 30,
    seed: int | None = None, progress: StepProgress = no_progress,
) -> Path:
    """Compute the drivers on a sample, gather metrics and backtest, and write the HTML report.

    Args:
        config, loaded, dataset: the dataset config, the bundle and the tables.
        out: the HTML file to write.
        segment: a customers column to compare segments by.
        targets: targets to show (default: bottom band, expected score, causes, churn).
        sample_size, min_segment_size, seed: see `training.drivers.compute_drivers`.
        progress: told as each stage (SHAP values, figures, plots and page) starts and ends.
    Returns:
        The path written.
    """
    if targets is None:
        targets = [t for t in _report_targets(loaded)]
    progress(f"SHAP values for up to {sample_size:,} customers", 0, 3)
    drivers = compute_drivers(config, loaded, dataset, segment, targets, sample_size, min_segment_size, seed)
    progress("metrics, band mix and latest backtest", 1, 3)
    inputs = ReportInputs(model_metrics(config, loaded), band_mix(config, loaded, dataset), latest_backtest(config))
    progress("plots and page", 2, 3)
    with tempfile.TemporaryDirectory() as tmp:
        write_drivers(drivers, Path(tmp))
        page = render_report(config, loaded, drivers, inputs)
    written = write_text_atomic(page, Path(out))
    progress("done", 3, 3)
    return written


def _report_targets(loaded: LoadedBundle) -> list[str]:
    """The report's default targets: the headline ones and every cause (ratings stay in `explain`)."""
    from cxpredict.models.explain import available_targets, default_targets

    names = default_targets(loaded.bundle)
    causes = [t.name for t in available_targets(loaded.bundle) if t.name.startswith("cause_")]
    return names[:2] + causes + names[2:]
