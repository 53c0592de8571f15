"""The analyst report: one self-contained HTML page (images embedded as base64, no external files).

It opens with a one-screen summary in words (population score and interval, what moved since the
previous driver analysis, the top three drivers, the "fix first" attributes, the segments furthest
from the population), then a table of contents, then the sections: population score, band mix of
surveyed vs predicted-silent customers, the key-driver chart of the rated attributes, the top
drivers per target with their plots, the driver differences by segment, the latest backtest, and
the note that SHAP drivers are associations, not proven causes.

Every driver figure is read from the `explain-` MLflow run the report names (the one given, or a
new one it logs first), never re-sampled, so the report, `cxpredict explain`, the API and the
console agree to the last digit. Units are business ones: shares in per cent, effects in
percentage points of a probability or in score points; columns carry the config's `display_names`.
"""

from __future__ import annotations

import base64
import html
import json
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
from cxpredict.models.explain import ExplainError
from cxpredict.models.key_drivers import FIX_FIRST, QUADRANT_MEANING
from cxpredict.models.registry import (
    DRIVERS_DIR,
    DRIVERS_GLOBAL_ARTIFACT,
    DRIVERS_KEY_ARTIFACT,
    DRIVERS_SEGMENTS_ARTIFACT,
    DRIVERS_SUMMARY_ARTIFACT,
    KIND_EXPLAIN,
    PARAM_SEGMENT,
    TAG_EXPLAINED_VERSION,
    TAG_KIND,
    TAG_MODEL_NAME,
    LoadedBundle,
    drivers_file,
    tracking_client,
    use_tracking_store,
)
from cxpredict.training.drivers import NOTE_ASSOCIATION, explain_drivers

TOP_ROWS = 8
BACKTEST_METRICS = (
    ("band_accuracy", "band accuracy"), ("macro_f1", "macro-F1"), ("baseline_logistic_macro_f1", "logistic macro-F1"),
    ("expected_score_mae", "expected-score MAE"),
    ("population_error_doubly_robust", "population score error (doubly robust)"),
    ("population_error_model", "population score error (model-completed)"),
    ("population_error_respondents_only", "population score error (respondents only)"),
    ("cause_auc_mean", "cause AUC (mean)"), ("churn_cv_roc_auc_tuned", "churn ROC AUC (5-fold)"),
)


@dataclass(frozen=True)
class ExplainRun:
    """The driver analysis of one `explain-` run, read back from its artifacts."""

    run_id: str
    model_name: str
    model_version: str
    started_at: datetime
    segment_column: str | None
    global_table: pd.DataFrame
    segment_table: pd.DataFrame | None
    key_drivers: pd.DataFrame | None
    summary: dict[str, Any]
    plots: dict[str, Path]


@dataclass(frozen=True)
class ReportInputs:
    """What the report shows besides the drivers: model metrics, band mix, backtest, segments, change."""

    metrics: dict[str, float]
    band_mix: pd.DataFrame
    backtest: dict[str, Any] | None
    segment_scores: pd.DataFrame | None = None
    previous: dict[str, Any] | None = None  # the previous explain run and its model's figures
    # The Λ at which the reliable segments' doubly robust ranking could change (issue 17); NaN: it
    # holds up to Λ = 50 or there are fewer than two reliable segments; None: not computed.
    segment_ranking_lambda: float | None = None


def read_explain_run(config: CxConfig, run_id: str, folder: Path) -> ExplainRun:
    """Download an explain run's tables and plots into `folder` and read them.

    Raises:
        ExplainError: the run does not exist or is not a driver analysis.
    """
    client = tracking_client(config.tracking_uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ExplainError(f"explain run '{run_id}' not found in {config.tracking_uri}") from None
    if run.data.tags.get(TAG_KIND) != KIND_EXPLAIN:
        raise ExplainError(f"run '{run_id}' is not a driver analysis (an `explain-` run of `cxpredict explain`)")
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=DRIVERS_DIR, dst_path=str(folder),
                                                     tracking_uri=config.tracking_uri))

    def table(name: str) -> pd.DataFrame | None:
        path = local / name
        return pd.read_csv(path, dtype={"segment": str}) if path.is_file() else None

    global_table = table(drivers_file(DRIVERS_GLOBAL_ARTIFACT))
    if global_table is None:
        raise ExplainError(f"explain run '{run_id}' has no {drivers_file(DRIVERS_GLOBAL_ARTIFACT)}")
    summary_path = local / drivers_file(DRIVERS_SUMMARY_ARTIFACT)
    return ExplainRun(
        run_id=run_id, model_name=run.data.tags.get(TAG_MODEL_NAME, ""),
        model_version=run.data.tags.get(TAG_EXPLAINED_VERSION, ""),
        started_at=datetime.fromtimestamp(run.info.start_time / 1000, UTC),
        segment_column=run.data.params.get(PARAM_SEGMENT) or None, global_table=global_table,
        segment_table=table(drivers_file(DRIVERS_SEGMENTS_ARTIFACT)),
        key_drivers=table(drivers_file(DRIVERS_KEY_ARTIFACT)),
        summary=json.loads(summary_path.read_text()) if summary_path.is_file() else {},
        plots={p.stem: p for p in sorted((local / "plots").glob("*.png"))},
    )


def previous_explain_run(config: CxConfig, current: ExplainRun) -> dict[str, Any] | None:
    """The explain run before `current` in the experiment (any model version), with its model's metrics."""
    client = tracking_client(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return None
    explain_runs = f"tags.`{TAG_KIND}` = '{KIND_EXPLAIN}'"
    runs = client.search_runs([experiment.experiment_id], explain_runs,
                              order_by=["attributes.start_time DESC"], max_results=200)
    older = [r for r in runs if r.info.start_time < current.started_at.timestamp() * 1000 - 0.5
             and r.info.run_id != current.run_id]
    if not older:
        return None
    run = older[0]
    with tempfile.TemporaryDirectory() as tmp:
        previous = read_explain_run(config, run.info.run_id, Path(tmp))
    metrics: dict[str, float] = {}
    try:
        version = client.get_model_version(previous.model_name, previous.model_version)
        if version.run_id:
            metrics = dict(client.get_run(version.run_id).data.metrics)
    except mlflow.exceptions.MlflowException:
        pass  # a deleted version: its driver table still compares
    return {"run": previous, "metrics": metrics}


def band_mix(config: CxConfig, loaded: LoadedBundle, dataset: Dataset,
             predicted: pd.DataFrame | None = None) -> pd.DataFrame:
    """Band shares: surveyed (observed answers) vs silent customers (mean predicted probabilities).

    Args:
        predicted: the bundle's predictions for every customer (row-aligned), when already made.
    """
    bundle = loaded.bundle
    ids = dataset.customers[config.id_column].astype(str)
    surveyed_ids = set(dataset.survey[config.id_column].astype(str))
    silent = ~ids.isin(surveyed_ids).to_numpy()
    observed = dataset.survey[config.score.column].map(config.score.band_of)
    rows = []
    if predicted is not None:
        predicted = predicted[silent] if silent.any() else None
    elif silent.any():
        predicted = bundle.predict(dataset.customers[silent], threads=config.training.threads)
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


def segment_scores(config: CxConfig, loaded: LoadedBundle, dataset: Dataset, column: str,
                   predicted: pd.DataFrame) -> pd.DataFrame:
    """Predicted score of each segment, 100·(mean P(top) − mean P(bottom)) over all its customers, and its gap."""
    bundle = loaded.bundle
    net = 100 * (predicted[band_column(bundle.top_band)].to_numpy() - predicted[band_column(bundle.bottom_band)]
                 .to_numpy())
    labels = dataset.customers[column].astype("string").fillna("missing").astype(str).to_numpy()
    frame = pd.DataFrame({"segment": labels, "net": net})
    out = frame.groupby("segment")["net"].agg(["size", "mean"]).rename(columns={"size": "customers",
                                                                                "mean": "predicted_score"})
    out["gap"] = out["predicted_score"] - float(net.mean())
    return out.reindex(out["gap"].abs().sort_values(ascending=False).index).reset_index()


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


def _table(frame: pd.DataFrame, formats: dict[str, str] | None = None, default: str = "{:.3f}") -> str:
    """An HTML table; `formats` gives a format per column (e.g. "{:.1%}"), escaping every value."""
    formats = formats or {}
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if isinstance(value, float | np.floating):
                text = "–" if np.isnan(value) else formats.get(column, default).format(value)
            else:
                text = str(value)
            cells.append(f"<td>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='t'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _label(config: CxConfig, column: str) -> str:
    return config.display_names.get(column, column.replace("_", " "))


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222;
padding:0 1em;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #1E88E5;padding-bottom:.2em;margin-top:2em}
.kpi{font-size:2.2em;font-weight:600}.muted{color:#666}.note{background:#FFF8E1;border-left:4px solid #FFB300;
padding:.8em 1em}table.t{border-collapse:collapse;margin:.5em 0;font-size:.9em}
table.t td,table.t th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
table.t td:first-child,table.t th:first-child{text-align:left}img{max-width:100%;margin:.4em 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}.hl{background:#E3F2FD}
.summary{background:#E3F2FD;border-radius:8px;padding:1em 1.4em}.summary li{margin:.3em 0}
nav.toc ol{columns:2}
"""


def _driver_rows(config: CxConfig, table: pd.DataFrame, top: int) -> pd.DataFrame:
    """A target's top drivers in business terms: label, share in %, effect with its unit, direction."""
    rows = table.head(top)
    unit = rows["effect_unit"].iloc[0] if "effect_unit" in rows and len(rows) else ""
    out = pd.DataFrame({
        "rank": rows["rank"].astype(int).astype(str),
        "driver": [_label(config, f) for f in rows["feature"]],
        "share of the model's movement": rows["share"],
        f"average effect ({unit})" if unit else "average effect": rows.get("effect", np.nan),
        "direction": rows["direction"].fillna("mixed"),
        f"mean |SHAP| ({rows['space'].iloc[0] if len(rows) else ''}) ± 1.96 SE": [
            f"{m:.4f} ± {1.959964 * s:.4f}"
            for m, s in zip(rows["mean_abs_shap"], rows["se_mean_abs_shap"], strict=True)],
    })
    return out


def _headline_target(run: ExplainRun, loaded: LoadedBundle) -> str:
    targets = list(dict.fromkeys(run.global_table["target"]))
    return loaded.bundle.bottom_band if loaded.bundle.bottom_band in targets else targets[0]


def summary_points(config: CxConfig, loaded: LoadedBundle, run: ExplainRun, inputs: ReportInputs) -> list[str]:
    """The report's opening, in words (each item one sentence of HTML, values escaped)."""
    esc = html.escape
    m = inputs.metrics
    bundle = loaded.bundle
    points = []
    if "population_index" in m:
        points.append(
            f"The population score is <b>{m['population_index']:+.1f}</b> (95 % interval "
            f"{m.get('population_index_ci_low', np.nan):+.1f} to {m.get('population_index_ci_high', np.nan):+.1f}): "
            f"100 × (share {esc(bundle.top_band)} − share {esc(bundle.bottom_band)}) over every customer, "
            "surveyed or not, corrected for who answers the survey.")
        points += [esc(line) for line in nonresponse_sentences(m)]
    previous = inputs.previous
    if previous is None:
        points.append("This is the first driver analysis of this experiment: nothing to compare with yet.")
    else:
        before = previous["run"]
        change = []
        if "population_index" in previous["metrics"] and "population_index" in m:
            delta = m["population_index"] - previous["metrics"]["population_index"]
            change.append(f"the population score moved {delta:+.1f} points (model version "
                          f"{esc(before.model_version)} → {esc(loaded.version)})")
        target = _headline_target(run, loaded)
        now = run.global_table[run.global_table["target"] == target].set_index("feature")["rank"]
        then = before.global_table[before.global_table["target"] == target].set_index("feature")["rank"]
        moved = [(f, int(then[f]), int(r)) for f, r in now.items() if r <= 5 and f in then and int(then[f]) != int(r)]
        if moved:
            change.append("drivers of " + esc(target) + " that changed rank: " + ", ".join(
                f"{esc(_label(config, f))} {a} → {b}" for f, a, b in moved[:3]))
        else:
            change.append(f"the top five drivers of {esc(target)} kept their ranks")
        points.append(f"Since the previous analysis ({before.started_at:%Y-%m-%d %H:%M} UTC, run "
                      f"{esc(before.run_id[:8])}): " + "; ".join(change) + ".")
    target = _headline_target(run, loaded)
    top = run.global_table[run.global_table["target"] == target].head(3)
    if len(top):
        unit = top["effect_unit"].iloc[0] if "effect_unit" in top else ""
        parts = [f"{esc(_label(config, r.feature))} ({r.share:.0%} of the model's movement, "
                 f"{r.effect:.1f} {esc(unit)} on average, {esc(str(r.direction))})" if "effect" in top else
                 f"{esc(_label(config, r.feature))} ({r.share:.0%}, {esc(str(r.direction))})"
                 for r in top.itertuples()]
        points.append(f"The three strongest drivers of P({esc(target)}): " + "; ".join(parts) + ".")
    if run.key_drivers is not None:
        everyone = run.key_drivers[run.key_drivers["segment"] == "all"].sort_values("rank")
        fix = everyone[everyone["quadrant"] == FIX_FIRST]
        if len(fix):
            points.append("Fix first (rated attributes that matter more than average and are rated below "
                          "average): " + ", ".join(f"<b>{esc(_label(config, a))}</b> ({i:.0%} of the explained "
                                                    f"variance, mean rating {p:.1f})"
                                                    for a, i, p in zip(fix["attribute"], fix["importance"],
                                                                       fix["performance"], strict=True)) + ".")
        else:
            points.append("No rated attribute is both more important than average and rated below average: "
                          f"the most important is {esc(_label(config, everyone['attribute'].iloc[0]))} "
                          f"({everyone['quadrant'].iloc[0]}).")
    if inputs.segment_scores is not None and len(inputs.segment_scores):
        far = inputs.segment_scores.head(3)
        column = esc(run.segment_column or "")
        points.append(f"Segments furthest from the population ({column}, predicted): " + ", ".join(
            f"{esc(str(r.segment))} {r.predicted_score:+.1f} ({r.gap:+.1f} points, {int(r.customers):,} customers)"
            for r in far.itertuples()) + ".")
    lam = inputs.segment_ranking_lambda
    if lam is not None:
        points.append(f"Their doubly robust ranking could change if unobserved selection shifted the odds of "
                      f"answering by a factor {lam:.2f}." if np.isfinite(lam) else
                      "Their doubly robust ranking holds even if unobserved selection shifted the odds of answering "
                      "by a factor of 50 (or fewer than two segments are reliable).")
    return points


SECTIONS = (("summary", "Summary"), ("population", "Population score"), ("band-mix", "Band mix"),
            ("key-drivers", "Key drivers of the rated attributes"), ("drivers", "Top drivers per target"),
            ("segments", "Driver differences by segment"), ("backtest", "Backtest"),
            ("meaning", "What these drivers mean"))


def render_report(config: CxConfig, loaded: LoadedBundle, run: ExplainRun, inputs: ReportInputs) -> str:
    """The report as one HTML string (every image inlined).

    Args:
        config: the dataset config.
        loaded: the explained bundle.
        run: the explain run whose tables and plots the report shows.
        inputs: metrics, band mix, backtest, segment scores and the previous run.
    Returns:
        The HTML page.
    """
    m = inputs.metrics
    esc = html.escape
    sections = [(k, t) for k, t in SECTIONS if k != "segments" or run.segment_table is not None]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cxpredict report: {esc(config.name)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Customer experience drivers — {esc(config.name)}</h1>",
             f"<p class='muted'>model {esc(loaded.model_name)} version {esc(loaded.version)} (run "
             f"{esc(loaded.run_id)}); driver figures from explain run {esc(run.run_id)} "
             f"({run.started_at:%Y-%m-%d %H:%M} UTC); generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
             "<section id='summary' class='summary'><h2>Summary</h2><ul>"
             + "".join(f"<li>{p}</li>" for p in summary_points(config, loaded, run, inputs)) + "</ul></section>",
             "<nav class='toc'><h2>Contents</h2><ol>"
             + "".join(f"<li><a href='#{k}'>{esc(t)}</a></li>" for k, t in sections[1:]) + "</ol></nav>",
             f"<div class='note'><b>Read this first.</b> {esc(NOTE_ASSOCIATION)}</div>"]

    parts.append("<h2 id='population'>Population score</h2>")
    if "population_index" in m:
        low, high = m.get("population_index_ci_low", np.nan), m.get("population_index_ci_high", np.nan)
        parts.append(f"<p><span class='kpi'>{m['population_index']:+.1f}</span> &nbsp; 95 % interval "
                     f"[{low:+.1f}, {high:+.1f}] score points — 100·(P({esc(loaded.bundle.top_band)}) − "
                     f"P({esc(loaded.bundle.bottom_band)})) over every customer, doubly robust: the model's "
                     "prediction for everyone plus the propensity-weighted mean residual of the "
                     "respondents (out of fold).</p>")
        extra = [("respondents only (naive)", "population_index_respondents"),
                 ("respondents, propensity-weighted", "population_index_ipw"),
                 ("model-completed (observed for respondents, predicted for the silent)", "population_index_model"),
                 ("silent customers (predicted)", "population_index_silent")]
        rows = [(label, f"{m[key]:+.1f} points") for label, key in extra if key in m]
        rows += nonresponse_rows(m)
        if "propensity_adversarial_auc" in m:
            rows.append(("how different respondents are (adversarial AUC; 0.5 = no different)",
                         f"{m['propensity_adversarial_auc']:.3f}"))
        if rows:
            parts.append(_table(pd.DataFrame(rows, columns=["figure", "value"])))
    else:
        parts.append("<p>The training run logged no population score.</p>")

    mix = inputs.band_mix
    parts.append("<h2 id='band-mix'>Band mix: surveyed vs predicted silent</h2>")
    if mix.attrs.get("n_silent", 0):
        parts.append(f"<p>{mix.attrs.get('n_surveyed', 0):,} surveyed customers (their answers) and "
                     f"{mix.attrs.get('n_silent', 0):,} silent customers (mean predicted probability). A gap "
                     "between the two columns is what the survey alone would get wrong.</p>")
    else:
        parts.append(f"<p>All {mix.attrs.get('n_surveyed', 0):,} customers answered the survey: there are no "
                     "silent customers to predict (use the backtest to see how predictions would do).</p>")
    parts.append(_table(mix, default="{:.1%}"))

    parts.append("<h2 id='key-drivers'>Key drivers of the rated attributes</h2>")
    if run.key_drivers is None:
        parts.append(f"<p>{esc(run.summary.get('key_drivers_note') or 'This explain run has no key-driver analysis.')}"
                     "</p>")
    else:
        kd = run.key_drivers[run.key_drivers["segment"] == "all"].sort_values("rank")
        parts.append(f"<p>Importance: each rating's share of the variance of {esc(config.score.column)} that the "
                     f"ratings explain together (R² = {kd['r2'].iloc[0]:.2f}; Shapley decomposition over every "
                     f"subset, {int(kd['respondents'].iloc[0]):,} respondents who rated every attribute, 95 % "
                     "bootstrap interval). Performance: the mean rating. "
                     + " ".join(f"<b>{esc(q)}</b>: {esc(t)}." for q, t in QUADRANT_MEANING.items()) + "</p>")
        shown = pd.DataFrame({
            "rank": kd["rank"].astype(str), "attribute": [_label(config, a) for a in kd["attribute"]],
            "importance": kd["importance"], "interval": [f"{a:.1%} – {b:.1%}" for a, b in
                                                         zip(kd["importance_low"], kd["importance_high"], strict=True)],
            "mean rating": kd["performance"], "quadrant": kd["quadrant"],
        })
        parts.append(_table(shown, {"importance": "{:.1%}", "mean rating": "{:.2f}"}))
        if "key_drivers" in run.plots:
            parts.append(_img(run.plots["key_drivers"], "key drivers: importance × performance"))
        if run.segment_column and set(run.key_drivers["segment"]) != {"all"}:
            by = run.key_drivers[run.key_drivers["segment"] != "all"]
            pivot = by.pivot_table(index="attribute", columns="segment", values="quadrant", aggfunc="first")
            pivot.index = [_label(config, a) for a in pivot.index]
            pivot = pivot.reset_index().rename(columns={"index": "attribute"})
            parts.append(f"<p>Quadrant of each attribute per {esc(run.segment_column)}:</p>" + _table(pivot))

    parts.append("<h2 id='drivers'>Top drivers per target</h2>")
    parts.append(f"<p>Computed on a {esc(run.summary.get('sample', {}).get('description', 'sample'))}. The share is "
                 "each column's part of everything that moves the model's prediction; the average effect is how "
                 "far the prediction would move without that column, in percentage points (pp) of the "
                 "probability or in score points.</p>")
    labels = {t["name"]: t["label"] for t in run.summary.get("targets", [])}
    for target in dict.fromkeys(run.global_table["target"]):
        table = run.global_table[run.global_table["target"] == target]
        label = labels.get(target, target)
        parts.append(f"<h3>{esc(label)}</h3>")
        parts.append(_table(_driver_rows(config, table, TOP_ROWS), {"share of the model's movement": "{:.1%}"},
                            default="{:.2f}"))
        images = [run.plots.get(f"bar_{target}"), run.plots.get(f"beeswarm_{target}")]
        parts.append("<div class='grid'>" + "".join(_img(p, label) for p in images if p) + "</div>")
        deps = [p for k, p in run.plots.items() if k.startswith(f"dependence_{target}_")]
        if deps:
            parts.append("<div class='grid'>" + "".join(_img(p, label) for p in deps) + "</div>")

    if run.segment_table is not None:
        seg = run.segment_table
        parts.append(f"<h2 id='segments'>Driver differences by {esc(run.segment_column or '')}</h2>")
        if inputs.segment_scores is not None:
            parts.append("<p>Predicted score per segment, furthest from the population first:</p>")
            parts.append(_table(inputs.segment_scores.rename(columns={"predicted_score": "predicted score",
                                                                      "gap": "gap to the population"}),
                                default="{:+.1f}"))
        parts.append("<p>Features whose rank differs most between segments are highlighted; the chart shows "
                     "each driver's share of the segment's total movement.</p>")
        for target in dict.fromkeys(seg["target"]):
            hl = seg[(seg["target"] == target) & seg["highlight"]]
            parts.append(f"<h3>{esc(labels.get(target, target))}</h3>")
            if len(hl):
                pivot = hl.pivot_table(index="feature", columns="segment", values="rank", aggfunc="first")
                pivot.index = [_label(config, f) for f in pivot.index]
                pivot = pivot.reset_index().rename(columns={"index": "driver"})
                pivot.columns = [str(c) for c in pivot.columns]
                parts.append("<p>Rank of the highlighted drivers per segment:</p>" + _table(pivot, default="{:.0f}"))
            else:
                parts.append("<p>No driver's rank differs by two places or more between segments.</p>")
            image = run.plots.get(f"segments_{target}")
            if image:
                parts.append(_img(image, f"{labels.get(target, target)} by segment"))

    parts.append("<h2 id='backtest'>Backtest</h2>")
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
        parts.append(_table(pd.DataFrame(rows, columns=["metric", "value"]), default="{:.4f}"))
    parts.append("<h2 id='meaning'>What these drivers mean</h2>")
    parts.append(f"<div class='note'>{esc(NOTE_ASSOCIATION)}</div></body></html>")
    return "\n".join(parts)


def build_report(
    config: CxConfig, loaded: LoadedBundle, dataset: Dataset, out: Path, segment: str | None = None,
    targets: list[str] | None = None, sample_size: int = 5_000, min_segment_size: int = 30,
    seed: int | None = None, explain_run: str | None = None, progress: StepProgress = no_progress,
) -> tuple[Path, str]:
    """Write the HTML report from an explain run's figures (logging a new explain run when none is named).

    Args:
        config, loaded, dataset: the dataset config, the bundle and the tables.
        out: the HTML file to write.
        segment: a customers column to compare segments by (for a new explain run).
        targets: targets to show in a new run (default: bottom band, expected score, causes, churn).
        sample_size, min_segment_size, seed: of a new run; see `training.drivers.compute_drivers`.
        explain_run: the explain run to read; it must explain `loaded`'s version.
        progress: told as each stage (explain run, figures, page) starts and ends.
    Returns:
        (the path written, the explain run's id).
    """
    with tempfile.TemporaryDirectory() as tmp:
        progress("explain run (SHAP values)" if explain_run is None else "explain run", 0, 3)
        if explain_run is None:
            result = explain_drivers(config, loaded, dataset, Path(tmp) / "explain", segment,
                                     targets if targets is not None else _report_targets(loaded), sample_size,
                                     min_segment_size, seed)
            assert result.run_id is not None
            explain_run = result.run_id
        run = read_explain_run(config, explain_run, Path(tmp) / "run")
        if run.model_version != loaded.version or run.model_name != loaded.model_name:
            raise ExplainError(f"explain run '{explain_run}' explains {run.model_name} version {run.model_version}, "
                               f"not version {loaded.version}; pass --model-version {run.model_version} or another run")
        progress("metrics, band mix and segments", 1, 3)
        predicted = loaded.bundle.predict(dataset.customers, threads=config.training.threads)
        scores = (segment_scores(config, loaded, dataset, run.segment_column, predicted)
                  if run.segment_column and run.segment_column in dataset.customers.columns else None)
        inputs = ReportInputs(model_metrics(config, loaded), band_mix(config, loaded, dataset, predicted),
                              latest_backtest(config), scores, previous_explain_run(config, run),
                              _ranking_lambda(config, loaded, dataset, run.segment_column) if scores is not None
                              else None)
        progress("page", 2, 3)
        page = render_report(config, loaded, run, inputs)
    written = write_text_atomic(page, Path(out))
    progress("done", 3, 3)
    return written, explain_run


def _ranking_lambda(config: CxConfig, loaded: LoadedBundle, dataset: Dataset, column: str | None) -> float | None:
    """The segments' ranking Λ from `segment_figures` (None without a response model)."""
    from cxpredict.training.segments import segment_figures

    if loaded.bundle.propensity_booster is None:
        return None
    figures = segment_figures(config, loaded.bundle, dataset, str(column))
    value = figures["ranking_flip_lambda"].iloc[0]
    return float("nan") if value is None or pd.isna(value) else float(value)


def _report_targets(loaded: LoadedBundle) -> list[str]:
    """The report's default targets: the headline ones and every cause (ratings stay in `explain`)."""
    from cxpredict.models.explain import available_targets, default_targets

    names = default_targets(loaded.bundle)
    causes = [t.name for t in available_targets(loaded.bundle) if t.name.startswith("cause_")]
    return names[:2] + causes + names[2:]


def nonresponse_sentences(m: dict[str, float]) -> list[str]:
    """The population score's honesty in words, from the run's metrics (headline, shadow estimate, churn gap)."""
    out = []
    if "population_index_headline_low" in m:
        out.append(f"Quoted with the error every prediction shares, the population score lies between "
                   f"{m['population_index_headline_low']:+.1f} and {m['population_index_headline_high']:+.1f} "
                   f"(sampling error alone: {m.get('population_index_ci_low', np.nan):+.1f} to "
                   f"{m.get('population_index_ci_high', np.nan):+.1f}).")
    if "population_index_shadow" in m:
        if m.get("population_index_shadow_identified", 0.0) >= 1.0:
            out.append(f"Allowing answering to depend on the score itself (churn as a shadow outcome), it is "
                       f"{m['population_index_shadow']:+.1f} [{m['population_index_shadow_ci_low']:+.1f}, "
                       f"{m['population_index_shadow_ci_high']:+.1f}].")
        else:
            out.append("The shadow-variable estimate is too weak to trust here (first-stage F "
                       f"{m.get('population_index_shadow_first_stage_f', np.nan):.1f}): read the sensitivity range.")
    bias = m.get("population_shadow_gap_implied_bias")
    if bias is not None and abs(bias) >= 1:
        mood, direction = ("happier", "high") if bias > 0 else ("less happy", "low")
        out.append(f"Silent customers churn at {100 * m['population_shadow_gap_observed_rate']:.1f}% against "
                   f"{100 * m['population_shadow_gap_predicted_rate']:.1f}% predicted: respondents may be {mood} "
                   f"than their data explains, and the score too {direction} by up to about {abs(bias):.0f} points.")
    if "population_index_sign_flip_lambda" in m:
        out.append(f"Its sign would change if unobserved selection shifted the odds of answering by a factor "
                   f"{m['population_index_sign_flip_lambda']:.2f}.")
    return out


def nonresponse_rows(m: dict[str, float]) -> list[tuple[str, str]]:
    """Table rows of the missing-not-at-random figures present in the run's metrics."""
    rows = []
    if "population_index_headline_low" in m:
        rows.append(("headline interval (sampling + shared error)",
                     f"[{m['population_index_headline_low']:+.1f}, {m['population_index_headline_high']:+.1f}]"))
    if "population_index_shadow" in m:
        rows.append(("shadow variable (churn), 95 % interval",
                     f"{m['population_index_shadow']:+.1f} [{m['population_index_shadow_ci_low']:+.1f}, "
                     f"{m['population_index_shadow_ci_high']:+.1f}]"))
    for lam in ("1_25", "1_5", "2"):
        key = f"population_index_dr_lambda_{lam}"
        if f"{key}_low" in m:
            rows.append((f"range if answering odds are off by up to ×{lam.replace('_', '.')}",
                         f"[{m[key + '_low']:+.1f}, {m[key + '_high']:+.1f}]"))
    return rows
