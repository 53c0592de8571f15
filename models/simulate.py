"""Strategy simulation: re-score eligible customers under each offer, rank offers, plan a budget.

Pure logic over a loaded `ScoringBundle` and a customers DataFrame, shared by the batch CLI and
the API. For each strategy the eligible rows are encoded once, only the intervened feature
columns are re-encoded, and the score and churn models run once over all of them (vectorised:
one predict call per model per strategy).

Every effect row says how its churn effect was obtained: `simulated` (the model's what-if: an
association, not a proven cause) or `learned` (an uplift model fitted on a randomised campaign,
stored in the bundle; it replaces the simulated churn effect). The score and P(top band) changes
are `learned` where campaigns recorded follow-up scores of both arms, else simulated: `churn_method`
and `score_method` say which for each row (`method` repeats `churn_method` for older readers).
A strategy a campaign found ineffective is credited no gain on that outcome, and one whose every
measured outcome showed no benefit is credited none on any outcome, so no objective recommends it.

Expected value = ΔP(retained)·value − cost = −Δchurn·value − cost, with value from the config's
`value_column`; without one every customer is worth 1, so the value is expected retained
customers and costs must be given in customers (cost 0.05: one retained customer pays for 20 offers).
A missing value is replaced by the median value (reported as `n_value_imputed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxpredict.features.config import ConfigError
from cxpredict.features.strategies import Strategy, apply_interventions, as_strategy, eligible_mask, validate_strategies
from cxpredict.models.bundle import ScoringBundle, band_column
from cxpredict.models.problems import predicted_column_names, problem_kinds, with_predicted_columns

OBJECTIVES: tuple[str, ...] = ("value", "churn", "score")
SIMULATED, LEARNED = "simulated", "learned"
NO_STRATEGY = "none"
ALL_SEGMENTS = "all"
DEFAULT_VALUE = 1.0


class SimulationError(ConfigError):
    """A simulation request that cannot be answered (unknown column, no churn model, bad objective)."""


@dataclass
class Simulation:
    """Baseline predictions per customer and one effect row per eligible (customer, strategy).

    `baseline`: id, segment, value, churn_baseline, expected_score_baseline, p_top_baseline.
    `effects`: id, segment, strategy, method, score_method, cost, value, the baseline / under-strategy
    / delta triples for churn, expected score and P(top band), delta_churn_simulated (the model's
    what-if even where a learned effect is used) and expected_value.
    """

    id_column: str
    top_band: str
    baseline: pd.DataFrame
    effects: pd.DataFrame
    strategies: list[Strategy]
    notes: list[str] = field(default_factory=list)
    n_value_imputed: int = 0


def _value(customers: pd.DataFrame, value_column: str | None) -> tuple[np.ndarray, int]:
    if value_column is None:
        return np.full(len(customers), DEFAULT_VALUE), 0
    if value_column not in customers.columns:
        raise SimulationError(f"value_column '{value_column}' not found in the customers")
    value = np.array(pd.to_numeric(customers[value_column], errors="coerce"), dtype=float)
    missing = ~np.isfinite(value)
    if missing.all():
        raise SimulationError(f"value_column '{value_column}' has no numeric value")
    value[missing] = np.median(value[~missing])
    return value, int(missing.sum())


def _segments(customers: pd.DataFrame, segment_column: str | None) -> np.ndarray:
    if segment_column is None:
        return np.full(len(customers), ALL_SEGMENTS, dtype=object)
    if segment_column not in customers.columns:
        raise SimulationError(f"segment column '{segment_column}' not found in the customers")
    return customers[segment_column].astype(object).where(customers[segment_column].notna(), "(missing)").to_numpy()


def simulate_effects(
    bundle: ScoringBundle,
    customers: pd.DataFrame,
    strategies: Sequence[Strategy | dict[str, Any]],
    value_column: str | None = None,
    segment_column: str | None = None,
    use_learned: bool = True,
    threads: int | None = None,
    X: np.ndarray | None = None,
    baseline: Mapping[str, np.ndarray] | None = None,
) -> Simulation:
    """Baseline and under-strategy predictions for every eligible (customer, strategy).

    Args:
        bundle: the loaded model bundle (score and churn models, learned uplift).
        customers: customer rows with the bundle's id column and every column strategies use.
        strategies: the catalogue (validated against the bundle's features here).
        value_column: per-customer value column; None means value 1 per customer.
        segment_column: column the segment table groups by; None means one segment "all".
        use_learned: replace simulated churn effects by learned ones where the bundle has them.
        threads: LightGBM threads.
        X: `bundle.pipeline.transform(customers)` when the caller has it (not encoded again).
        baseline: the customers' band probabilities, `expected_score` and `churn_probability` when the
            caller has just scored them (`alerts run`): not predicted again.
    Returns:
        The simulation (baseline per customer, effects per eligible pair).
    """
    catalogue = [as_strategy(s) for s in strategies]
    validate_strategies(catalogue, feature_schema=bundle.pipeline.schema(), source="strategies",
                        predicted=problem_kinds(bundle))
    if bundle.churn_booster is None:
        raise SimulationError("the model has no churn model: strategies cannot be simulated on churn or value")
    if bundle.id_column not in customers.columns:
        raise SimulationError(f"id column '{bundle.id_column}' not found in the customers")
    customers = customers.reset_index(drop=True)
    X = bundle.pipeline.transform(customers) if X is None else X
    predicted = set(predicted_column_names(bundle))
    used = {c.column for s in catalogue for c in s.eligible} | ({segment_column} if segment_column else set())
    if (used & predicted) - set(customers.columns):
        customers = with_predicted_columns(bundle, customers, X, threads)
    ids = customers[bundle.id_column].astype(str).to_numpy()
    value, n_imputed = _value(customers, value_column)
    segments = _segments(customers, segment_column)
    top = band_column(bundle.top_band)

    base = (bundle.predict_matrix(X, threads, causes=False, drivers=False) if baseline is None
            else {k: np.asarray(v, float) for k, v in baseline.items()})
    baseline = pd.DataFrame({
        bundle.id_column: ids,
        "segment": segments,
        "value": value,
        "churn_baseline": base["churn_probability"],
        "expected_score_baseline": base["expected_score"],
        "p_top_baseline": base[top],
    })
    feature_index = {name: j for j, name in enumerate(bundle.pipeline.feature_names_)}
    uplift = getattr(bundle, "uplift", {}) or {}  # bundles saved before uplift existed have none
    notes: list[str] = []
    frames: list[pd.DataFrame] = []
    for strategy in catalogue:
        rows = np.flatnonzero(eligible_mask(customers, strategy))
        if rows.size == 0:
            notes.append(f"strategy '{strategy.id}': no eligible customer")
            continue
        columns = [column for column, _, _ in strategy.intervention]
        changed = apply_interventions(customers.iloc[rows][columns], strategy)
        X_under = X[rows]  # fancy indexing copies
        encoded = bundle.pipeline.transform(changed)
        for column in columns:
            X_under[:, feature_index[column]] = encoded[:, feature_index[column]]
        under = bundle.predict_matrix(X_under, threads, causes=False, drivers=False)
        churn_base = base["churn_probability"][rows]
        delta_simulated = under["churn_probability"] - churn_base
        learned = uplift.get(strategy.id) if use_learned else None
        churn_learned = learned is not None and learned.churn_learned
        score_learned = learned is not None and learned.score_learned
        if churn_learned:
            churn_under = np.clip(churn_base + learned.predict_effect(X[rows]), 0.0, 1.0)
        elif learned is not None and learned.proven_ineffective:
            churn_under = np.maximum(under["churn_probability"], churn_base)  # no churn benefit credited
        else:
            churn_under = under["churn_probability"]
        delta = churn_under - churn_base
        score_base, top_base = base["expected_score"][rows], base[top][rows]
        if score_learned:
            delta_score, delta_top = learned.score_effects(len(rows))
            score_under = np.clip(score_base + delta_score, bundle.levels[0], bundle.levels[-1])
            top_under = np.clip(top_base + delta_top, 0.0, 1.0)
        elif learned is not None and learned.proven_ineffective:  # churn proven useless, score untested
            score_under, top_under = np.minimum(under["expected_score"], score_base), np.minimum(under[top], top_base)
        else:
            score_under, top_under = under["expected_score"], under[top]
        churn_method = LEARNED if churn_learned else SIMULATED
        frames.append(pd.DataFrame({
            bundle.id_column: ids[rows],
            "segment": segments[rows],
            "strategy": strategy.id,
            "method": churn_method,
            "churn_method": churn_method,
            "score_method": LEARNED if score_learned else SIMULATED,
            "cost": strategy.cost,
            "value": value[rows],
            "churn_baseline": churn_base,
            "churn_strategy": churn_under,
            "delta_churn": delta,
            "delta_churn_simulated": delta_simulated,
            "expected_score_baseline": score_base,
            "expected_score_strategy": score_under,
            "delta_expected_score": score_under - score_base,
            "delta_expected_score_simulated": under["expected_score"] - score_base,
            "p_top_baseline": top_base,
            "p_top_strategy": top_under,
            "delta_p_top": top_under - top_base,
            "expected_value": -delta * value[rows] - strategy.cost,
        }))
    effects = pd.concat(frames, ignore_index=True) if frames else _empty_effects(bundle.id_column)
    if n_imputed:
        notes.append(f"value_column '{value_column}': {n_imputed} missing values replaced by the median")
    return Simulation(bundle.id_column, bundle.top_band, baseline, effects, catalogue, notes, n_imputed)


EFFECT_COLUMNS = (
    "segment", "strategy", "method", "churn_method", "score_method", "cost", "value", "churn_baseline",
    "churn_strategy", "delta_churn", "delta_churn_simulated", "expected_score_baseline", "expected_score_strategy",
    "delta_expected_score", "delta_expected_score_simulated", "p_top_baseline", "p_top_strategy", "delta_p_top",
    "expected_value",
)


def _empty_effects(id_column: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[id_column, *EFFECT_COLUMNS])


def _with_methods(effects: pd.DataFrame) -> pd.DataFrame:
    """Effects with `churn_method` (rows built before it existed carry `method` only)."""
    if "churn_method" in effects.columns:
        return effects
    return effects.assign(churn_method=effects["method"])


def objective_gain(effects: pd.DataFrame, objective: str) -> np.ndarray:
    """What one (customer, strategy) gains under an objective; positive = worth doing.

    value: expected value (net of cost); churn: fall in P(churn); score: rise in expected score.

    Args:
        effects: effect rows of a Simulation.
        objective: value | churn | score.
    Returns:
        The gain per effect row.
    """
    if objective == "value":
        return effects["expected_value"].to_numpy(float)
    if objective == "churn":
        return -effects["delta_churn"].to_numpy(float)
    if objective == "score":
        return effects["delta_expected_score"].to_numpy(float)
    raise SimulationError(f"unknown objective '{objective}', use one of {list(OBJECTIVES)}")


def best_strategy(simulation: Simulation, objective: str = "value") -> pd.DataFrame:
    """The best strategy per customer, or `none` when no strategy has a positive gain.

    Args:
        simulation: the result of `simulate_effects`.
        objective: value | churn | score (ranks by expected value, churn fall or score rise).
    Returns:
        One row per customer: id, segment, best_strategy, method, gain, cost, expected_value,
        delta_churn, delta_expected_score, delta_p_top, n_eligible (strategies the customer may get).
    """
    id_column, effects = simulation.id_column, _with_methods(simulation.effects)
    ranked = effects.assign(gain=objective_gain(effects, objective))
    n_eligible = ranked.groupby(id_column).size()
    ranked = ranked[ranked["gain"] > 0].sort_values([id_column, "gain"], ascending=[True, False], kind="stable")
    top = ranked.drop_duplicates(id_column).set_index(id_column)
    out = simulation.baseline[[id_column, "segment", "value", "churn_baseline", "expected_score_baseline"]].copy()
    keyed = out[id_column]
    out["best_strategy"] = keyed.map(top["strategy"]).fillna(NO_STRATEGY).to_numpy()
    out["method"] = keyed.map(top["method"]).to_numpy()
    for column in ("churn_method", "score_method"):
        out[column] = keyed.map(top[column]).to_numpy()
    for column in ("gain", "cost", "expected_value", "delta_churn", "delta_expected_score", "delta_p_top"):
        out[column] = keyed.map(top[column]).fillna(0.0).to_numpy(float)
    out["n_eligible"] = keyed.map(n_eligible).fillna(0).astype(int).to_numpy()
    out["objective"] = objective
    return out


def segment_table(simulation: Simulation, objective: str = "value") -> pd.DataFrame:
    """Strategies × segments: what an operations lead reads to choose an offer per segment.

    Each (segment, strategy) row, over the segment's eligible customers: how many, the average
    expected score and P(top band) without and under the strategy, the average change in P(churn)
    (uplift, and the simulated one), the expected total value if all were targeted, how many would
    gain, and for how many it is the best offer. A `none` row per segment gives the baseline, and
    segment `all` repeats the table over every customer.

    Args:
        simulation: the result of `simulate_effects`.
        objective: the objective for `n_best`.
    Returns:
        The table, one row per (segment, strategy).
    """
    gain = objective_gain(simulation.effects, objective)
    effects = _with_methods(simulation.effects).assign(positive=(gain > 0).astype(int))
    best = best_strategy(simulation, objective)
    baseline = simulation.baseline
    tables = []
    for scope, eff, base, chosen in (
        ("segment", effects, baseline, best),
        (ALL_SEGMENTS, effects.assign(segment=ALL_SEGMENTS), baseline.assign(segment=ALL_SEGMENTS),
         best.assign(segment=ALL_SEGMENTS)),
    ):
        if scope == "segment" and set(baseline["segment"]) == {ALL_SEGMENTS}:
            continue
        size = base.groupby("segment").size().rename("n_customers")
        grouped = eff.groupby(["segment", "strategy"], sort=True)
        table = grouped.agg(
            method=("method", "first"),
            churn_method=("churn_method", "first"),
            score_method=("score_method", "first"),
            n_eligible=("strategy", "size"),
            cost=("cost", "first"),
            expected_score_baseline=("expected_score_baseline", "mean"),
            expected_score_strategy=("expected_score_strategy", "mean"),
            delta_expected_score=("delta_expected_score", "mean"),
            p_top_baseline=("p_top_baseline", "mean"),
            p_top_strategy=("p_top_strategy", "mean"),
            churn_baseline=("churn_baseline", "mean"),
            churn_strategy=("churn_strategy", "mean"),
            delta_churn=("delta_churn", "mean"),
            delta_churn_simulated=("delta_churn_simulated", "mean"),
            expected_total_value=("expected_value", "sum"),
            n_positive=("positive", "sum"),
        ).reset_index()
        n_best = chosen.groupby(["segment", "best_strategy"]).size()
        table["n_best"] = [int(n_best.get((s, k), 0)) for s, k in zip(table["segment"], table["strategy"], strict=True)]
        none = base.groupby("segment").agg(
            expected_score_baseline=("expected_score_baseline", "mean"),
            p_top_baseline=("p_top_baseline", "mean"),
            churn_baseline=("churn_baseline", "mean"),
        ).reset_index()
        none = none.assign(
            strategy=NO_STRATEGY, method="", churn_method="", score_method="",
            n_eligible=none["segment"].map(size).to_numpy(), cost=0.0,
            expected_score_strategy=none["expected_score_baseline"], delta_expected_score=0.0,
            p_top_strategy=none["p_top_baseline"], churn_strategy=none["churn_baseline"], delta_churn=0.0,
            delta_churn_simulated=0.0, expected_total_value=0.0, n_positive=0,
            n_best=[int(n_best.get((s, NO_STRATEGY), 0)) for s in none["segment"]],
        )
        table = pd.concat([none, table], ignore_index=True)
        table.insert(1, "n_customers", table["segment"].map(size).astype(int).to_numpy())
        tables.append(table)
    columns = [
        "segment", "strategy", "method", "churn_method", "score_method",
        "n_customers", "n_eligible", "cost", "expected_score_baseline",
        "expected_score_strategy", "delta_expected_score", "p_top_baseline", "p_top_strategy", "churn_baseline",
        "churn_strategy", "delta_churn", "delta_churn_simulated", "expected_total_value", "n_positive", "n_best",
    ]
    counts = {"n_customers": int, "n_eligible": int, "n_positive": int, "n_best": int}
    return pd.concat(tables, ignore_index=True)[columns].astype(counts)


# ---------------------------------------------------------------------------------------------
# Budget
# ---------------------------------------------------------------------------------------------


@dataclass
class BudgetPlan:
    """Customers and offers chosen within a budget, with the LP bound that no plan can beat."""

    assignment: pd.DataFrame  # one row per targeted customer (the effect row of its offer, plus gain)
    budget: float
    spent: float
    total_gain: float
    lp_bound: float  # optimum of the linear relaxation: an upper bound on any assignment's gain
    objective: str

    def summary(self) -> dict[str, Any]:
        """The plan's figures (JSON-ready)."""
        return {
            "objective": self.objective,
            "budget": self.budget,
            "spent": self.spent,
            "n_targeted": len(self.assignment),
            "total_gain": self.total_gain,
            "total_expected_value": float(self.assignment["expected_value"].sum()) if len(self.assignment) else 0.0,
            "lp_bound": self.lp_bound,
            "gap_to_lp_bound": self.lp_bound - self.total_gain,
        }


def _hull_steps(owner: np.ndarray, cost: np.ndarray, gain: np.ndarray, n_owners: int) -> tuple[np.ndarray, ...]:
    """Each owner's upper convex hull of (cost, gain) options, as upgrade steps from (0, 0).

    Returns (owner, option row, Δcost, Δgain, slope) of every step, owner by owner in step order.
    """
    order = np.lexsort((np.arange(len(owner)), owner))
    owner_sorted = owner[order]
    starts = np.searchsorted(owner_sorted, np.arange(n_owners))
    rank = np.arange(len(owner)) - starts[owner_sorted]
    width = int(rank.max()) + 1 if len(rank) else 0
    C = np.full((n_owners, width), np.inf)
    G = np.full((n_owners, width), -np.inf)
    R = np.full((n_owners, width), -1)
    C[owner_sorted, rank], G[owner_sorted, rank], R[owner_sorted, rank] = cost[order], gain[order], order
    current_c, current_g = np.zeros(n_owners), np.zeros(n_owners)
    active = np.ones(n_owners, bool)
    steps: list[tuple[np.ndarray, ...]] = []
    every = np.arange(n_owners)
    for _ in range(width):
        dc = C - current_c[:, None]
        dg = G - current_g[:, None]
        better = dg > 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(better, np.where(dc > 0, dg / np.where(dc > 0, dc, 1.0), np.inf), -np.inf)
        free = np.isinf(slope) & (slope > 0)
        pick = np.where(free.any(axis=1), np.argmax(np.where(free, dg, -np.inf), axis=1), np.argmax(slope, axis=1))
        chosen_slope = slope[every, pick]
        active &= chosen_slope > -np.inf
        if not active.any():
            break
        who = every[active]
        j = pick[active]
        steps.append((who, R[who, j], dc[who, j], dg[who, j], chosen_slope[active]))
        current_c[who], current_g[who] = C[who, j], G[who, j]
    if not steps:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty, empty, empty
    return tuple(np.concatenate(parts) for parts in zip(*steps, strict=True))


def assign_with_budget(simulation: Simulation, budget: float, objective: str = "value") -> BudgetPlan:
    """At most one offer per customer, total cost within the budget, total gain as high as possible.

    A multiple-choice knapsack. Its linear relaxation is solved exactly by taking each customer's
    upper convex hull of (cost, gain) options as upgrade steps and spending the budget on steps in
    falling gain-per-cost order (Sinha & Zoltners, 1979); the integer plan stops at the first step
    that does not fit and then fills the rest of the budget with later steps that still fit. It is
    within one step's gain of the optimum, and `lp_bound` (the relaxation's optimum) bounds it.
    Offers with a non-positive gain are never chosen.

    Args:
        simulation: the result of `simulate_effects`.
        budget: the total cost allowed (value_column units).
        objective: value | churn | score (the gain to maximise).
    Returns:
        The plan: assignment rows, spend, total gain and the LP bound.
    """
    if budget < 0:
        raise SimulationError(f"budget must be non-negative, got {budget}")
    effects = simulation.effects.assign(gain=objective_gain(simulation.effects, objective))
    candidates = effects[(effects["gain"] > 0) & (effects["cost"] >= 0)].reset_index(drop=True)
    codes, _ = pd.factorize(candidates[simulation.id_column])
    owner, row, dc, dg, slope = _hull_steps(
        codes, candidates["cost"].to_numpy(float), candidates["gain"].to_numpy(float), int(codes.max(initial=-1)) + 1
    )
    order = np.argsort(-slope, kind="stable")
    owner, row, dc, dg = owner[order], row[order], dc[order], dg[order]
    spend = np.cumsum(dc)
    fits = spend <= budget + 1e-9
    cut = int(np.argmin(fits)) if not fits.all() else len(fits)
    taken = np.zeros(len(dc), bool)
    taken[:cut] = True
    lp_bound = float(dg[:cut].sum())
    remaining = budget - (float(spend[cut - 1]) if cut else 0.0)
    if cut < len(dc):
        lp_bound += remaining / dc[cut] * dg[cut] if dc[cut] > 0 else dg[cut]
        suffix_min = np.minimum.accumulate(dc[::-1])[::-1]
        blocked: set[int] = set()
        for i in range(cut, len(dc)):
            if remaining < suffix_min[i] - 1e-9:
                break
            who = int(owner[i])
            if who in blocked:
                continue
            if dc[i] <= remaining + 1e-9:
                taken[i] = True
                remaining -= float(dc[i])
            else:
                blocked.add(who)  # a later upgrade of this customer would skip this step
    final: dict[int, int] = {}
    for who, option in zip(owner[taken], row[taken], strict=True):
        final[int(who)] = int(option)  # steps are in order per customer: the last one taken wins
    assignment = candidates.iloc[sorted(final.values())].reset_index(drop=True)
    return BudgetPlan(
        assignment=assignment,
        budget=float(budget),
        spent=float(assignment["cost"].sum()),
        total_gain=float(assignment["gain"].sum()),
        lp_bound=float(lp_bound),
        objective=objective,
    )
