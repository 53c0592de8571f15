"""Batch strategy simulation: choose customers, simulate every offer with the champion, write the tables.

The logic is models/simulate.py (shared with the API); this module reads the inputs named on the
command line, checks them (unknown ids and columns are errors, never silently dropped) and writes
the outputs atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cxpredict.features.config import ConfigError, CxConfig
from cxpredict.features.io import write_csv_atomic, write_json_atomic, write_parquet_atomic
from cxpredict.features.load import DataError, Dataset
from cxpredict.features.progress import StepProgress, no_progress
from cxpredict.features.strategies import Strategy, config_strategies, eligible_mask, validate_strategies
from cxpredict.models.registry import LoadedBundle
from cxpredict.models.simulate import (
    OBJECTIVES,
    BudgetPlan,
    Simulation,
    assign_with_budget,
    best_strategy,
    segment_table,
    simulate_effects,
)
from cxpredict.models.uplift import uplift_report

DEFAULT_SEGMENT_COLUMN = "segment"


@dataclass
class SimulationReport:
    """Everything `cxpredict simulate` writes."""

    simulation: Simulation
    best: pd.DataFrame
    segments: pd.DataFrame
    uplift: pd.DataFrame
    plan: BudgetPlan | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def parse_segment_filter(text: str, customers: pd.DataFrame) -> dict[str, Any]:
    """`COL=VAL` (or `COL=A,B` for any of several values) as an eligibility condition.

    The value is read as a number when the column is numeric.

    Args:
        text: the filter as typed.
        customers: the customers table (to check the column and its type).
    Returns:
        A condition mapping {column, op, value}.
    """
    column, sep, raw = text.partition("=")
    column = column.strip()
    if not sep or not column or not raw.strip():
        raise ConfigError(f"--segment-filter '{text}': expected COL=VAL (or COL=A,B)")
    if column not in customers.columns:
        raise ConfigError(f"--segment-filter '{text}': column '{column}' not found in the customers")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    values: list[Any] = parts
    if pd.api.types.is_numeric_dtype(customers[column]) and not pd.api.types.is_bool_dtype(customers[column]):
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"--segment-filter '{text}': column '{column}' is numeric, '{raw}' is not") from None
    if len(values) == 1:
        return {"column": column, "op": "==", "value": values[0]}
    return {"column": column, "op": "in", "value": values}


def select_customers(
    config: CxConfig, customers: pd.DataFrame, ids_file: Path | None = None, filters: Sequence[str] = ()
) -> pd.DataFrame:
    """The customers to simulate: those listed in `ids_file` and matching every filter (all by default).

    Args:
        config: the dataset config (id column).
        customers: the customers table.
        ids_file: a CSV with the id column (or a single column of ids).
        filters: `COL=VAL` filters, all of which must hold.
    Returns:
        The selected rows, in the customers table's order.
    """
    selected = customers
    if ids_file is not None:
        if not ids_file.is_file():
            raise DataError(f"{ids_file}: file not found")
        listed = pd.read_csv(ids_file, dtype=str)
        if listed.empty:
            raise DataError(f"{ids_file}: no customer id listed")
        column = config.id_column if config.id_column in listed.columns else listed.columns[0]
        if column != config.id_column and listed.shape[1] > 1:
            raise DataError(f"{ids_file}: id column '{config.id_column}' not found; columns are {list(listed.columns)}")
        ids = listed[column].dropna().str.strip()
        known = customers[config.id_column].astype(str)
        unknown = ~ids.isin(known)
        if unknown.any():
            raise DataError(
                f"{ids_file}: column '{column}': {int(unknown.sum())} unknown customer ids, "
                f"first '{ids[unknown].iloc[0]}' in row {int(unknown.to_numpy().nonzero()[0][0]) + 1}"
            )
        selected = selected[known.isin(set(ids)).to_numpy()]
    if filters:
        conditions = [parse_segment_filter(f, customers) for f in filters]
        mask = eligible_mask(selected, {"id": "--segment-filter", "eligible": conditions})
        selected = selected[mask]
    if selected.empty:
        raise DataError("no customer matches --customers / --segment-filter")
    return selected


@dataclass
class SimulationRequest:
    """Checked inputs of a batch simulation: the catalogue, the selected customers and the options."""

    strategies: list[Strategy]
    source: str
    customers: pd.DataFrame
    objective: str = "value"
    budget: float | None = None
    segment_by: str | None = None
    use_learned: bool = True


def prepare_simulation(
    config: CxConfig,
    dataset: Dataset,
    ids_file: Path | None = None,
    filters: Sequence[str] = (),
    objective: str = "value",
    budget: float | None = None,
    segment_by: str | None = None,
    use_learned: bool = True,
) -> SimulationRequest:
    """Check everything that does not need the model, so bad input fails before it is loaded.

    Args:
        config: the dataset config (strategies file, id column).
        dataset: the loaded tables.
        ids_file: optional CSV of customer ids to simulate.
        filters: optional `COL=VAL` filters.
        objective: value | churn | score.
        budget: total cost allowed for the budget plan (None: no plan).
        segment_by: column of the segment table (default: `segment` when the customers have it).
        use_learned: use effects learned from campaigns where the model has them.
    Returns:
        The checked request.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {list(OBJECTIVES)}, got '{objective}'")
    if budget is not None and budget < 0:
        raise ConfigError(f"--budget must be non-negative, got {budget}")
    strategies, source = config_strategies(config)
    validate_strategies(strategies, dataset.customers, source=source)
    customers = select_customers(config, dataset.customers, ids_file, filters)
    if segment_by is None and DEFAULT_SEGMENT_COLUMN in customers.columns:
        segment_by = DEFAULT_SEGMENT_COLUMN
    if segment_by is not None and segment_by not in customers.columns:
        raise ConfigError(f"--segment-by: column '{segment_by}' not found in the customers")
    return SimulationRequest(strategies, source, customers, objective, budget, segment_by, use_learned)


def run_simulation(config: CxConfig, loaded: LoadedBundle, request: SimulationRequest,
                   progress: StepProgress = no_progress) -> SimulationReport:
    """Simulate the request's strategies for its customers with a loaded model.

    Args:
        config: the dataset config (value column, threads).
        loaded: the champion (or an explicit version) bundle.
        request: the checked inputs from `prepare_simulation`.
        progress: told as each stage (effects, ranking, budget plan) starts and ends.
    Returns:
        The simulation, best strategy per customer, segment table, uplift report and budget plan.
    """
    strategies, customers, objective = request.strategies, request.customers, request.objective
    budget, segment_by = request.budget, request.segment_by
    validate_strategies(strategies, feature_schema=loaded.bundle.pipeline.schema(), source=request.source)
    steps = 2 + (budget is not None)
    progress(f"effects of {len(strategies)} strategies on {len(customers):,} customers", 0, steps)
    simulation = simulate_effects(
        loaded.bundle, customers, strategies, value_column=config.value_column, segment_column=segment_by,
        use_learned=request.use_learned, threads=config.training.threads,
    )
    progress(f"best strategy per customer and segment ({objective})", 1, steps)
    best = best_strategy(simulation, objective)
    segments = segment_table(simulation, objective)
    learned = getattr(loaded.bundle, "uplift", {}) or {}
    if budget is not None:
        progress(f"budget plan ({budget:,.2f})", 2, steps)
    plan = assign_with_budget(simulation, budget, objective) if budget is not None else None
    progress("done", steps, steps)
    effects = simulation.effects
    per_strategy = {
        s.id: {
            "method": str(effects.loc[effects["strategy"] == s.id, "method"].iloc[0])
            if (effects["strategy"] == s.id).any() else None,
            "n_eligible": int((effects["strategy"] == s.id).sum()),
            "n_best": int((best["best_strategy"] == s.id).sum()),
            "expected_total_value": float(effects.loc[effects["strategy"] == s.id, "expected_value"].sum()),
        }
        for s in strategies
    }
    summary = {
        "model": loaded.model_name,
        "model_version": loaded.version,
        "objective": objective,
        "value_column": config.value_column,
        "value_default": None if config.value_column else 1.0,
        "segment_column": segment_by,
        "n_customers": len(customers),
        "n_effects": len(effects),
        "n_with_strategy": int((best["best_strategy"] != "none").sum()),
        "total_gain_best": float(best["gain"].sum()),
        "strategies": per_strategy,
        "budget_plan": plan.summary() if plan is not None else None,
        "notes": simulation.notes,
    }
    return SimulationReport(simulation, best, segments, uplift_report(learned), plan, summary)


def write_simulation(report: SimulationReport, out_dir: Path) -> dict[str, Path]:
    """Write the report's tables into a folder (each file written atomically).

    Args:
        report: the result of `run_simulation`.
        out_dir: the folder (created if needed).
    Returns:
        Name -> path of every file written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "effects": write_parquet_atomic(report.simulation.effects, out_dir / "effects.parquet"),
        "best_strategy": write_csv_atomic(report.best, out_dir / "best_strategy.csv"),
        "segments": write_csv_atomic(report.segments, out_dir / "segments.csv"),
    }
    if not report.uplift.empty:
        paths["uplift"] = write_csv_atomic(report.uplift, out_dir / "uplift.csv")
    if report.plan is not None:
        paths["assignment"] = write_csv_atomic(report.plan.assignment, out_dir / "assignment.csv")
    paths["summary"] = write_json_atomic(report.summary, out_dir / "summary.json", indent=2)
    return paths
