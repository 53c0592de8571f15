"""Campaigns with a built-in control group: the plan (offers, holdout, reasons) and its evaluation.

Pure logic over a loaded bundle, a Simulation and tables, shared by the CLI and the API.

The holdout is stratified by strategy × problem group, so every tested offer has a control group
in every group it targets, and seeded, so a plan can be redrawn exactly. A random split of a few
hundred rows is unbalanced on some feature by chance (with 150 controls the standardised mean
difference of one feature has a standard deviation of ~0.09), so the split is re-randomised
(Morgan & Rubin, 2012): up to `MAX_DRAWS` seeded draws, keeping the first whose largest
standardised mean difference over the main features is below `campaign.max_smd` (else the best
draw). Re-randomisation keeps the treated/control comparison unbiased; its intervals are, if
anything, conservative.

The evaluation compares treated and control on churn and on the follow-up score per strategy
and per problem group, with 95 % intervals, Qini / AUUC where both arms are big enough, the value
realised against the value the plan expected, and a verdict: `works` (an interval shows a benefit
and none shows harm), `harmful` (an interval shows harm), `ineffective` (no benefit, and the
benefit the plan expected lies outside the interval), `not proven` (no benefit shown, too few
rows to rule out the expected one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxpredict.features.campaigns import (
    CAMPAIGN_COLUMN,
    CONTROL,
    TREATED,
    churn_column,
    read_history,
    recorded_plan,
)
from cxpredict.features.config import ConfigError, CxConfig
from cxpredict.features.strategies import Strategy
from cxpredict.models.bundle import ScoringBundle
from cxpredict.models.explain import CHURN, EXPECTED_SCORE
from cxpredict.models.problems import NO_PROBLEM, PROBLEM_GROUP, bundle_problem_columns
from cxpredict.models.scoring import CustomerScorer, ScoringOptions
from cxpredict.models.simulate import Simulation, best_strategy, objective_gain
from cxpredict.models.uplift import CONFIDENCE, stratified_effect, uplift_curves

MAX_DRAWS = 50
WORKS, NOT_PROVEN, INEFFECTIVE, HARMFUL = "works", "not proven", "ineffective", "harmful"


class CampaignPlanError(ConfigError):
    """A plan that cannot be drawn (holdout outside [0, 0.9], nobody to target)."""


def standardised_differences(features: pd.DataFrame, treated: np.ndarray) -> dict[str, float]:
    """|mean(treated) − mean(control)| / pooled sd per numeric column (NaNs left out; 0 when constant).

    Args:
        features: numeric columns of the planned customers.
        treated: boolean arm per row.
    Returns:
        column -> standardised mean difference.
    """
    out: dict[str, float] = {}
    for column in features.columns:
        values = pd.to_numeric(features[column], errors="coerce").to_numpy(float)
        t, c = values[treated], values[~treated]
        t, c = t[np.isfinite(t)], c[np.isfinite(c)]
        if len(t) < 2 or len(c) < 2:
            continue
        sd = float(np.sqrt((t.var(ddof=1) + c.var(ddof=1)) / 2))
        out[column] = 0.0 if sd <= 1e-12 else float(abs(t.mean() - c.mean()) / sd)
    return out


def draw_holdout(
    strata: np.ndarray, share: float, seed: int, features: pd.DataFrame | None = None,
    max_smd: float = 0.1, max_draws: int = MAX_DRAWS,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A stratified, seeded, re-randomised control group.

    In every stratum round(share·n) rows are held out (at least one when the stratum has two
    rows or more and share > 0).

    Args:
        strata: stratum label per planned row (strategy × problem group).
        share: share held out, in [0, 0.9].
        seed: the draws' seed (draw k uses seed + k).
        features: numeric balance features per row (None: no re-randomisation).
        max_smd: accept the first draw whose largest SMD is below this.
        max_draws: draws tried at most.
    Returns:
        (True where held out as control, balance: draws used, the seed used, SMD per feature, largest SMD).
    """
    if not 0.0 <= share <= 0.9:
        raise CampaignPlanError(f"--holdout must be between 0 and 0.9, got {share}")
    n = len(strata)
    codes, _ = pd.factorize(pd.Series(strata, dtype=object), sort=True)
    best: tuple[float, np.ndarray, int, dict[str, float]] | None = None
    for draw in range(max_draws if (features is not None and share > 0) else 1):
        rng = np.random.default_rng(seed + draw)
        control = np.zeros(n, bool)
        if share > 0:
            for code in range(codes.max(initial=-1) + 1):
                rows = np.flatnonzero(codes == code)
                k = int(round(share * len(rows)))
                if k == 0 and len(rows) >= 2:
                    k = 1
                control[rng.choice(rows, size=min(k, len(rows)), replace=False)] = True
        smd = standardised_differences(features, ~control) if features is not None and control.any() else {}
        worst = max(smd.values(), default=0.0)
        if best is None or worst < best[0]:
            best = (worst, control, seed + draw, smd)
        if worst < max_smd:
            break
    assert best is not None
    worst, control, used, smd = best
    return control, {"draws": draw + 1, "seed_used": used, "smd": smd, "max_smd": worst,
                     "balanced": bool(worst < max_smd)}


@dataclass(frozen=True)
class CampaignPlan:
    """A drawn plan: one row per planned customer, and its settings and figures."""

    rows: pd.DataFrame  # id, strategy, strategy_name, group, rank, expected_*, value, cost, problem_group, reason
    settings: dict[str, Any]


def _reasons(bundle: ScoringBundle, customers: pd.DataFrame, objective: str,
             threads: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Problem group and "problem group X; top driver F = V" per customer."""
    X = bundle.pipeline.transform(customers)
    target = EXPECTED_SCORE if objective == "score" else (CHURN if bundle.churn_booster is not None else EXPECTED_SCORE)
    scorer = CustomerScorer(bundle, ScoringOptions(uncertainty=False, explain=1, explain_targets=(target,)), threads)
    table = scorer.score_matrix(customers[bundle.id_column].astype(str).to_numpy(), X)
    predicted = bundle.predict_matrix(X, threads, drivers=False)
    problems = bundle_problem_columns(bundle, predicted)
    group = problems.get(PROBLEM_GROUP, np.full(len(customers), NO_PROBLEM, dtype=object))
    feature = table.get(f"driver1_{target}_feature", pd.Series([None] * len(customers))).to_numpy(dtype=object)
    value = table.get(f"driver1_{target}_value", pd.Series([None] * len(customers))).to_numpy(dtype=object)
    lift = problems.get("problem_lift", np.full(len(customers), np.nan))
    reasons = []
    for g, li, f, v in zip(group, lift, feature, value, strict=True):
        head = f"problem group {g}" + (f" (lift {li:.1f})" if g != NO_PROBLEM and np.isfinite(li) else "")
        reasons.append(head + (f"; top driver {f} = {v}" if f else ""))
    return np.asarray(group, dtype=object), np.asarray(reasons, dtype=object)


def build_plan(
    bundle: ScoringBundle,
    customers: pd.DataFrame,
    simulation: Simulation,
    strategies: Sequence[Strategy],
    assignment: pd.DataFrame | None,
    name: str,
    holdout: float,
    seed: int,
    objective: str = "value",
    max_smd: float = 0.1,
    threads: int | None = None,
) -> CampaignPlan:
    """Choose offers (the budget plan, or every customer's best offer) and hold out a control group.

    Args:
        bundle: the champion.
        customers: the customers simulated (their rows give the reasons and the balance features).
        simulation: `simulate_effects` over them.
        strategies: the catalogue (names).
        assignment: a budget plan's assignment rows; None means each customer's best strategy.
        name: the campaign name.
        holdout: share of the chosen customers held out as the control group, in [0, 0.9].
        seed: the holdout's seed.
        objective: value | churn | score.
        max_smd: the balance target of the holdout.
        threads: LightGBM threads.
    Returns:
        The plan rows (ranked by gain) and its settings.
    """
    if not 0.0 <= holdout <= 0.9:
        raise CampaignPlanError(f"--holdout must be between 0 and 0.9, got {holdout}")
    id_column = simulation.id_column
    if assignment is None:
        best = best_strategy(simulation, objective)
        chosen = best[best["best_strategy"] != "none"][[id_column, "best_strategy"]].rename(
            columns={"best_strategy": "strategy"})
        effects = simulation.effects.merge(chosen, on=[id_column, "strategy"])
        assignment = effects.assign(gain=objective_gain(effects, objective))
    if assignment.empty:
        raise CampaignPlanError(f"campaign '{name}': no customer has an offer with a positive {objective} gain")
    assignment = assignment.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)
    by_id = customers.assign(**{id_column: customers[id_column].astype(str)}).set_index(id_column)
    planned = by_id.loc[assignment[id_column].astype(str)].reset_index()
    group, reason = _reasons(bundle, planned, objective, threads)
    numeric = [s["name"] for s in bundle.pipeline.schema() if s["kind"] == "numeric" and s["name"] in planned]
    balance_features = planned[numeric].copy()
    baseline = simulation.baseline.set_index(id_column).loc[assignment[id_column].astype(str)]
    balance_features["churn_baseline"] = baseline["churn_baseline"].to_numpy()
    balance_features["expected_score_baseline"] = baseline["expected_score_baseline"].to_numpy()
    strata = (assignment["strategy"].astype(str) + "|" + pd.Series(group).astype(str)).to_numpy()
    control, balance = draw_holdout(strata, holdout, seed, balance_features, max_smd)
    names = {s.id: s.name or s.id for s in strategies}
    rows = pd.DataFrame({
        "customer": assignment[id_column].astype(str).to_numpy(),
        "strategy": assignment["strategy"].astype(str).to_numpy(),
        "strategy_name": assignment["strategy"].map(names).fillna(assignment["strategy"]).to_numpy(),
        "group": np.where(control, CONTROL, TREATED),
        "rank": np.arange(1, len(assignment) + 1),
        "expected_value": assignment["expected_value"].to_numpy(float),
        "expected_delta_churn": assignment["delta_churn"].to_numpy(float),
        "expected_delta_score": assignment["delta_expected_score"].to_numpy(float),
        "value": assignment["value"].to_numpy(float),
        "cost": assignment["cost"].to_numpy(float),
        "problem_group": group,
        "reason": reason,
    })
    treated = rows["group"] == TREATED
    settings = {
        "name": name, "objective": objective, "holdout": holdout, "seed": seed,
        "n_planned": len(rows), "n_treated": int(treated.sum()), "n_control": int((~treated).sum()),
        "expected_value_treated": float(rows.loc[treated, "expected_value"].sum()),
        "cost_treated": float(rows.loc[treated, "cost"].sum()),
        "strategies": {str(k): int(v) for k, v in rows["strategy"].value_counts().items()},
        "methods": {str(sid): {"churn_method": str(rows["churn_method"].iloc[0]),
                               "score_method": str(rows["score_method"].iloc[0])}
                    for sid, rows in simulation.effects.groupby("strategy")},
        "balance": balance,
        "usable_for_learning": holdout > 0,
    }
    return CampaignPlan(rows, settings)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def _verdict(churn: Mapping[str, float] | None, score: Mapping[str, float] | None,
             expected_churn: float, expected_score: float) -> str:
    """works / harmful / ineffective / not proven from the churn and score intervals."""
    measured = [m for m in (churn, score) if m is not None]
    if not measured:
        return NOT_PROVEN
    harm = (churn is not None and churn["ci_low"] > 0) or (score is not None and score["ci_high"] < 0)
    benefit = (churn is not None and churn["ci_high"] < 0) or (score is not None and score["ci_low"] > 0)
    if harm:
        return HARMFUL
    if benefit:
        return WORKS
    # No benefit shown: "ineffective" when the interval rules out the benefit the plan expected.
    ruled_out = []
    if churn is not None and expected_churn < 0:
        ruled_out.append(churn["ci_low"] > expected_churn)
    if score is not None and expected_score > 0:
        ruled_out.append(score["ci_high"] < expected_score)
    return INEFFECTIVE if ruled_out and all(ruled_out) else NOT_PROVEN


def _effect(treated: np.ndarray, y: np.ndarray, binary: bool, min_rows: int) -> dict[str, float] | None:
    have = np.isfinite(y)
    t = treated[have]
    if min(int(t.sum()), int((~t).sum())) < max(min_rows, 2):
        return None
    e = stratified_effect(t.astype(int), y[have], None, CONFIDENCE, binary=binary)
    return {"treated": e.rate_treated, "control": e.rate_control, "ate": e.ate, "se": e.se, "ci_low": e.ci_low,
            "ci_high": e.ci_high, "n_treated": e.n_treated, "n_control": e.n_control}


def evaluate_campaign(
    plan: pd.DataFrame, results: pd.DataFrame, id_column: str, churn_column: str, score_column: str,
    top_band: tuple[int, int], min_rows: int = 30,
) -> dict[str, Any]:
    """Did it make a difference? Treated vs control per strategy and per (strategy, problem group).

    Args:
        plan: the campaign's plan rows (`customer`, `strategy`, `group`, `expected_*`, `value`, `cost`,
            `problem_group`, `rank`).
        results: the campaign's rows of the history (id, churn and/or score).
        id_column: the id column of `results`.
        churn_column: the churn column (0/1).
        score_column: the follow-up score column.
        top_band: (low, high) of the top band.
        min_rows: rows per arm a cell needs for an effect (and for Qini / AUUC).
    Returns:
        {"strategies": [...], "groups": [...], "totals": {...}} of JSON-ready rows.
    """
    merged = plan.merge(results.assign(customer=results[id_column].astype(str)), on="customer", how="inner",
                        suffixes=("", "_result"))
    churn = pd.to_numeric(merged.get(churn_column), errors="coerce") if churn_column in merged else None
    score = pd.to_numeric(merged.get(score_column), errors="coerce") if score_column in merged else None
    y_churn = churn.to_numpy(float) if churn is not None else np.full(len(merged), np.nan)
    y_score = score.to_numpy(float) if score is not None else np.full(len(merged), np.nan)
    treated = (merged["group"] == TREATED).to_numpy()

    def cell(rows: np.ndarray, keys: dict[str, Any]) -> dict[str, Any]:
        part = merged.iloc[rows]
        t = treated[rows]
        churn_effect = _effect(t, y_churn[rows], True, min_rows)
        score_effect = _effect(t, y_score[rows], False, min_rows)
        top = np.where(np.isfinite(y_score[rows]), ((y_score[rows] >= top_band[0]) & (y_score[rows] <= top_band[1]))
                       .astype(float), np.nan)
        top_effect = _effect(t, top, True, min_rows)
        expected_churn = float(part.loc[t, "expected_delta_churn"].mean()) if t.any() else 0.0
        expected_score = float(part.loc[t, "expected_delta_score"].mean()) if t.any() else 0.0
        expected_value = float(part.loc[t, "expected_value"].sum())
        realised = None
        if churn_effect is not None:
            realised = float(-churn_effect["ate"] * part.loc[t, "value"].sum() - part.loc[t, "cost"].sum())
        qini = auuc = None
        churn_known = np.isfinite(y_churn[rows])
        if churn_effect is not None and min(int(t[churn_known].sum()), int((~t[churn_known]).sum())) >= min_rows:
            curves = uplift_curves(-part["rank"].to_numpy(float)[churn_known], t[churn_known].astype(int),
                                   1 - y_churn[rows][churn_known])
            qini, auuc = curves.qini_coefficient, curves.auuc
        return {
            **keys, "n_treated": int(t.sum()), "n_control": int((~t).sum()),
            "churn": churn_effect, "score": score_effect, "top": top_effect,
            "expected_delta_churn": expected_churn, "expected_delta_score": expected_score,
            "expected_value": expected_value, "realised_value": realised, "qini": qini, "auuc": auuc,
            "verdict": _verdict(churn_effect, score_effect, expected_churn, expected_score),
        }

    strategies = [cell(np.flatnonzero(merged["strategy"] == s), {"strategy": str(s)})
                  for s in sorted(merged["strategy"].unique())]
    groups = [cell(np.flatnonzero((merged["strategy"] == s) & (merged["problem_group"] == g)),
                   {"strategy": str(s), "problem_group": str(g)})
              for s, g in sorted(set(zip(merged["strategy"], merged["problem_group"].astype(str), strict=True)))]
    totals = {
        "n_planned": len(plan), "n_with_results": len(merged),
        "n_treated": int(treated.sum()), "n_control": int((~treated).sum()),
        "expected_value": float(sum(s["expected_value"] for s in strategies)),
        "realised_value": (float(sum(s["realised_value"] for s in strategies if s["realised_value"] is not None))
                           if any(s["realised_value"] is not None for s in strategies) else None),
        "verdicts": {s["strategy"]: s["verdict"] for s in strategies},
    }
    return {"strategies": strategies, "groups": groups, "totals": totals}


def campaign_evaluation(config: CxConfig, name: str, store_url: str | None = None) -> dict[str, Any]:
    """A recorded campaign's summary and, when results exist, its evaluation (JSON-ready).

    Args:
        config: the dataset config.
        name: the campaign name.
        store_url: the customer store.
    Returns:
        {"name", "wave", "created_at", "settings", "evaluation" (None without results)}.
    """
    info, plan = recorded_plan(config, name, store_url)
    history = read_history(config) if config.data.campaigns is not None else pd.DataFrame()
    results = (history[history[CAMPAIGN_COLUMN].astype(str) == name]
               if not history.empty and CAMPAIGN_COLUMN in history else pd.DataFrame())
    evaluation = None
    if not results.empty:
        evaluation = evaluate_campaign(plan, results, config.id_column, churn_column(config), config.score.column,
                                       tuple(config.score.bands[config.score.top_band]),
                                       config.campaign.min_group_rows)
    return finite_or_none({"name": info.name, "wave": info.wave, "created_at": info.created_at.isoformat(),
                           "settings": info.settings, "evaluation": evaluation})


def finite_or_none(value: Any) -> Any:
    """The document with every NaN / infinite float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def verdict_sentence(row: Mapping[str, Any]) -> str:
    """A plain-language line for one strategy's evaluation."""
    parts = [f"{row['strategy']}: {row['verdict']}"]
    if row.get("churn"):
        c = row["churn"]
        parts.append(f"churn {c['treated']:.1%} treated vs {c['control']:.1%} control "
                     f"(effect {c['ate']:+.3f}, 95 % CI {c['ci_low']:+.3f} to {c['ci_high']:+.3f})")
    if row.get("score"):
        s = row["score"]
        parts.append(f"score {s['treated']:.2f} vs {s['control']:.2f} "
                     f"(effect {s['ate']:+.2f}, 95 % CI {s['ci_low']:+.2f} to {s['ci_high']:+.2f})")
    if row.get("realised_value") is not None:
        parts.append(f"value realised {row['realised_value']:,.0f} vs {row['expected_value']:,.0f} expected")
    if not row.get("churn") and not row.get("score"):
        parts.append(f"too few results ({row['n_treated']} treated / {row['n_control']} control)")
    return "; ".join(parts)
