"""The strategy loop's commands: plan a campaign with a control group, read its results, report, history.

`plan_campaign` runs the champion's simulation, chooses offers (budget plan or best offer), draws
the stratified holdout (models/campaigns.py), writes `plan.csv` and records the plan in the
customer store (features/campaigns.py). `append_campaign_results` is the one way results enter
the campaigns history (also used by the API and by closed tasks). `campaign_report` answers "did
it make a difference?" and `iteration_history` reads back, from the training runs, how well each
champion predicted the waves it planned and how much value they realised.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cxpredict.features.campaigns import (
    CAMPAIGN_COLUMN,
    AppendReport,
    CampaignError,
    PlanStore,
    append_campaign_results,
    churn_column,
    default_store_url,
    read_history,
)
from cxpredict.features.config import CxConfig
from cxpredict.features.io import write_csv_atomic, write_json_atomic, write_text_atomic
from cxpredict.features.strategies import Strategy
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.campaigns import (
    CampaignPlan,
    build_plan,
    campaign_evaluation,
    evaluate_campaign,
    verdict_sentence,
)
from cxpredict.models.registry import ITERATION_HISTORY_ARTIFACT
from cxpredict.models.simulate import assign_with_budget, simulate_effects

__all__ = ["AppendReport", "CampaignError", "append_campaign_results", "campaign_evaluation", "campaign_report",
           "iteration_history", "plan_campaign", "wave_history"]
logger = logging.getLogger(__name__)
NO_HOLDOUT_WARNING = ("--holdout 0: no control group, so this campaign's results cannot teach the model "
                      "(effects need a randomised control group)")


@dataclass(frozen=True)
class PlannedCampaign:
    """A recorded plan and where it went."""

    plan: CampaignPlan
    wave: int
    plan_path: Path
    store_url: str
    warnings: list[str]


def plan_campaign(
    config: CxConfig, bundle: ScoringBundle, customers: pd.DataFrame, strategies: list[Strategy], name: str,
    out_dir: Path, budget: float | None = None, holdout: float | None = None, objective: str = "value",
    seed: int | None = None, replace: bool = False, store_url: str | None = None, model_version: str = "",
) -> PlannedCampaign:
    """Choose offers, hold out a control group, write `plan.csv` and record the plan in the store.

    Args:
        config: the dataset config (value column, `campaign.*`, seed).
        bundle: the champion.
        customers: the customers to plan for (already filtered).
        strategies: the checked catalogue.
        name: the campaign name (unique in the store unless `replace`).
        out_dir: folder for `plan.csv` and `plan_summary.json`.
        budget: total cost allowed (None: every customer's best offer).
        holdout: control share in [0, 0.9] (None: `campaign.holdout`); 0 must be explicit.
        objective: value | churn | score.
        seed: the holdout's seed (default `training.seed`).
        replace: overwrite a campaign of the same name.
        store_url: the customer store (default beside the MLflow store).
        model_version: the champion's version, recorded with the plan.
    Returns:
        The plan, its wave, the file and store written, and warnings.
    """
    holdout = config.campaign.holdout if holdout is None else holdout
    url = store_url or default_store_url(config)
    store = PlanStore(url)
    try:
        if not replace and any(c.name == name for c in store.campaigns()):
            raise CampaignError(f"{store.url_label}: campaign '{name}' already exists; choose another --name "
                                f"or pass --replace")
        simulation = simulate_effects(bundle, customers, strategies, value_column=config.value_column,
                                      threads=config.training.threads)
        assignment = assign_with_budget(simulation, budget, objective).assignment if budget is not None else None
        seed = config.training.seed if seed is None else seed
        plan = build_plan(bundle, customers, simulation, strategies, assignment, name, holdout, seed, objective,
                          config.campaign.max_smd, config.training.threads)
        existing = [c for c in store.campaigns() if c.name == name]
        wave = existing[0].wave if existing else max(store.next_wave(), _history_max_wave(config) + 1)
        settings = {**plan.settings, "wave": wave, "budget": budget, "model_version": model_version}
        warnings = [] if holdout > 0 else [NO_HOLDOUT_WARNING]
        if not plan.settings["balance"]["balanced"]:
            warnings.append(f"control group not balanced after {plan.settings['balance']['draws']} draws "
                            f"(largest SMD {plan.settings['balance']['max_smd']:.3f})")
        untested = sorted({r for r, m in zip(simulation.effects["strategy"], simulation.effects["churn_method"],
                                             strict=True) if m == "simulated"} & set(plan.rows["strategy"]))
        if untested:
            warnings.append(f"strategies {', '.join(untested)} have no campaign yet: their effects are simulated "
                            f"(method=simulated)")
        settings["warnings"] = warnings
        out_dir.mkdir(parents=True, exist_ok=True)
        frame = plan.rows.rename(columns={"customer": config.id_column})
        frame.insert(0, CAMPAIGN_COLUMN, name)
        path = write_csv_atomic(frame, out_dir / "plan.csv")
        write_json_atomic(settings, out_dir / "plan_summary.json", indent=2)
        store.record(name, plan.rows, settings, wave, replace)
    finally:
        store.close()
    return PlannedCampaign(CampaignPlan(plan.rows, settings), wave, path, url, warnings)


def _history_max_wave(config: CxConfig) -> int:
    try:
        history = read_history(config)
    except CampaignError:
        return 0
    if history.empty or "wave" not in history.columns:
        return 0
    return int(pd.to_numeric(history["wave"], errors="coerce").max(skipna=True) or 0)


def _plot(evaluation: dict[str, Any]) -> str:
    """Treated vs control churn and score per strategy with 95 % intervals, as an embedded PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = evaluation["strategies"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 * len(rows) + 1.8))
    labels = [r["strategy"] for r in rows]
    for ax, key, title in ((axes[0], "churn", "effect on churn (treated − control)"),
                           (axes[1], "score", "effect on the score (treated − control)")):
        y = np.arange(len(rows))
        for i, r in enumerate(rows):
            effect = r.get(key)
            if effect:
                ax.errorbar(effect["ate"], i, xerr=[[effect["ate"] - effect["ci_low"]],
                                                     [effect["ci_high"] - effect["ate"]]], fmt="o", capsize=3)
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_yticks(y, labels)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def campaign_report(config: CxConfig, name: str, out: Path, store_url: str | None = None) -> dict[str, Any]:
    """Write the campaign's evaluation as JSON (`.json`) or one self-contained HTML page (else).

    Args:
        config: the dataset config.
        name: the campaign name.
        out: the report file.
        store_url: the customer store.
    Returns:
        The evaluation document written.
    """
    document = campaign_evaluation(config, name, store_url)
    evaluation = document["evaluation"]
    document["verdicts"] = [verdict_sentence(r) for r in evaluation["strategies"]] if evaluation else []
    if out.suffix.lower() == ".json":
        write_json_atomic(document, out, indent=2)
        return document
    parts = [f"<h1>Campaign {html.escape(name)} (wave {document['wave']})</h1>"]
    settings = document["settings"]
    parts.append(f"<p>{settings.get('n_treated', 0)} treated, {settings.get('n_control', 0)} in the control group "
                 f"(holdout {settings.get('holdout')}, seed {settings.get('seed')}); objective "
                 f"{html.escape(str(settings.get('objective')))}.</p>")
    if evaluation is None:
        parts.append("<p>No results yet: run <code>cxpredict campaign results</code>.</p>")
    else:
        parts.append("<h2>Did it make a difference?</h2><ul>")
        parts += [f"<li>{html.escape(line)}</li>" for line in document["verdicts"]]
        parts.append("</ul>")
        parts.append(f'<img alt="effects with 95 % intervals" src="data:image/png;base64,{_plot(evaluation)}">')
        parts.append("<h2>Per strategy and problem group</h2>")
        parts.append(_table(evaluation["groups"]))
        totals = evaluation["totals"]
        parts.append(f"<p>Value realised {_money(totals['realised_value'])} against "
                     f"{_money(totals['expected_value'])} the plan expected.</p>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>campaign report</title><style>"
            "body{font-family:sans-serif;max-width:1000px;margin:auto}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
            "</style></head><body>" + "\n".join(parts) + "</body></html>")
    write_text_atomic(page, out)
    return document


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("<tr><th>strategy</th><th>problem group</th><th>treated</th><th>control</th><th>churn effect</th>"
            "<th>score effect</th><th>verdict</th></tr>")
    body = []
    for r in rows:
        churn = r.get("churn")
        score = r.get("score")
        churn_text = f"{churn['ate']:+.3f} [{churn['ci_low']:+.3f}, {churn['ci_high']:+.3f}]" if churn else "–"
        score_text = f"{score['ate']:+.2f} [{score['ci_low']:+.2f}, {score['ci_high']:+.2f}]" if score else "–"
        body.append(f"<tr><td>{html.escape(r['strategy'])}</td><td>{html.escape(str(r.get('problem_group', '')))}"
                    f"</td><td>{r['n_treated']}</td><td>{r['n_control']}</td><td>{churn_text}</td>"
                    f"<td>{score_text}</td><td>{r['verdict']}</td></tr>")
    return "<table>" + head + "".join(body) + "</table>"


# ---------------------------------------------------------------------------------------------
# Iteration history: how well each champion predicted the waves it planned
# ---------------------------------------------------------------------------------------------


def wave_history(
    config: CxConfig, previous: ScoringBundle | None, previous_version: str, customers: pd.DataFrame,
    history: pd.DataFrame | None, store_url: str | None = None,
) -> list[dict[str, Any]]:
    """Per wave of the history: the previous champion's accuracy on its control customers and value realised.

    Control customers received nothing, so their follow-up answers and churn are what the model
    predicted for them: band accuracy and log loss on the follow-up scores, churn ROC AUC. The
    value realised is the evaluation's (churn effect × value of the treated − cost).

    Args:
        config: the dataset config.
        previous: the champion before this run (None on the first run: nothing is logged).
        previous_version: its registry version.
        customers: the customers table.
        history: the campaigns history.
        store_url: the customer store (plans, for the value realised).
    Returns:
        One JSON-ready row per wave.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    if previous is None or history is None or history.empty or "wave" not in history.columns:
        return []
    rows = []
    by_id = customers.assign(**{config.id_column: customers[config.id_column].astype(str)}).set_index(config.id_column)
    churn, score = churn_column(config), config.score.column
    store = PlanStore(store_url or default_store_url(config))
    try:
        plans = {c.name: c for c in store.campaigns()}
        for wave, part in history.groupby(pd.to_numeric(history["wave"], errors="coerce"), sort=True):
            control = part[part["treated"].astype(int) == 0]
            row: dict[str, Any] = {"wave": int(wave), "model_version": previous_version,
                                   "campaigns": sorted(part[CAMPAIGN_COLUMN].astype(str).unique())
                                   if CAMPAIGN_COLUMN in part else [], "n_rows": len(part), "n_control": len(control)}
            if len(control):
                frame = by_id.loc[control[config.id_column].astype(str)].reset_index()
                predicted = previous.predict_matrix(previous.pipeline.transform(frame), config.training.threads,
                                                    causes=False, drivers=False)
                if score in control:
                    answered = pd.to_numeric(control[score], errors="coerce").notna().to_numpy()
                    if answered.sum() >= 2:
                        bands = [config.score.band_of(int(s)) for s in pd.to_numeric(control[score])[answered]]
                        names = previous.band_names
                        probs = np.column_stack([predicted[band_column(b)][answered] for b in names])
                        index = np.array([names.index(b) for b in bands])
                        row["band_accuracy"] = float((probs.argmax(axis=1) == index).mean())
                        row["log_loss"] = float(log_loss(index, np.clip(probs, 1e-6, 1),
                                                         labels=list(range(len(names)))))
                        row["n_scores"] = int(answered.sum())
                if churn in control and "churn_probability" in predicted:
                    known = pd.to_numeric(control[churn], errors="coerce").notna().to_numpy()
                    y = pd.to_numeric(control[churn], errors="coerce").to_numpy()[known]
                    if known.sum() >= 2 and 0 < y.mean() < 1:
                        row["churn_auc"] = float(roc_auc_score(y, predicted["churn_probability"][known]))
            realised = []
            for campaign in row["campaigns"]:
                if campaign in plans:
                    plan = store.plan(campaign)
                    evaluation = evaluate_campaign(plan, part[part[CAMPAIGN_COLUMN].astype(str) == campaign],
                                                   config.id_column, churn, score,
                                                   tuple(config.score.bands[config.score.top_band]),
                                                   config.campaign.min_group_rows)
                    if evaluation["totals"]["realised_value"] is not None:
                        realised.append(evaluation["totals"]["realised_value"])
                    row["expected_value"] = evaluation["totals"]["expected_value"]
            row["realised_value"] = float(sum(realised)) if realised else None
            rows.append(row)
    finally:
        store.close()
    return rows


def log_wave_history(rows: list[dict[str, Any]]) -> None:
    """Log the per-wave rows of this run (artifact and `wave{N}_*` metrics)."""
    if not rows or mlflow.active_run() is None:
        return
    mlflow.log_dict({"waves": rows}, ITERATION_HISTORY_ARTIFACT)
    metrics = {}
    for row in rows:
        for key in ("band_accuracy", "log_loss", "churn_auc", "realised_value"):
            if row.get(key) is not None:
                metrics[f"wave{row['wave']}_{key}"] = float(row[key])
    mlflow.log_metrics(metrics)


def iteration_history(config: CxConfig) -> pd.DataFrame:
    """Accuracy and value over iterations: per wave, as measured by the first run after its results.

    The first training run after a wave's results holds the champion that planned it, so its row
    is how well the loop's model did on that wave.

    Args:
        config: the dataset config (its MLflow store and experiment).
    Returns:
        One row per wave: wave, run, model_version, band_accuracy, log_loss, churn_auc,
        expected_value, realised_value, n_rows, n_control.
    """
    from cxpredict.training.registry import configure_mlflow

    configure_mlflow(config)
    runs = mlflow.search_runs(experiment_names=[config.experiment_name],
                              filter_string="attributes.run_name LIKE 'train-%'",
                              order_by=["attributes.start_time ASC"], output_format="list")
    seen: dict[int, dict[str, Any]] = {}
    client = mlflow.MlflowClient()
    for run in runs:
        try:
            path = client.download_artifacts(run.info.run_id, ITERATION_HISTORY_ARTIFACT)
        except Exception:  # runs before the loop existed, or runs without campaign waves, have no artifact
            continue
        for row in json.loads(Path(path).read_text())["waves"]:
            seen.setdefault(int(row["wave"]), {**row, "run_id": run.info.run_id})
    columns = ["wave", "run_id", "model_version", "band_accuracy", "log_loss", "churn_auc", "expected_value",
               "realised_value", "n_rows", "n_control"]
    return pd.DataFrame([seen[w] for w in sorted(seen)]).reindex(columns=columns)


def plot_iteration_history(table: pd.DataFrame, out: Path) -> Path:
    """Accuracy and value over waves as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for column in ("band_accuracy", "churn_auc"):
        if column in table and table[column].notna().any():
            axes[0].plot(table["wave"], table[column], marker="o", label=column)
    axes[0].set_xlabel("wave")
    axes[0].set_title("accuracy of the planning champion", fontsize=9)
    axes[0].legend(fontsize=8)
    if "realised_value" in table and table["realised_value"].notna().any():
        axes[1].plot(table["wave"], table["realised_value"], marker="o", label="realised")
        axes[1].plot(table["wave"], table["expected_value"], marker="x", label="expected by the plan")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("wave")
    axes[1].set_title("value per wave", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    from cxpredict.features.io import write_bytes_atomic

    return write_bytes_atomic(buffer.getvalue(), out)
