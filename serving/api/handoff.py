"""Hand-off files: one CSV per owner of their open tasks, ready for a spreadsheet, plus closed-task campaign results.

A front-line person reads these, not a data scientist: the offer by its *name*, values rounded
to cents, the reason in words, the customer's contact columns when the customers table has
them, and a rank (critical first, then by expected value of the suggested offer, then by the
customer's value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxpredict.features.alerts import LEVEL_RANK, OwnerTable
from cxpredict.features.io import write_csv_atomic
from cxpredict.serving.api.store import CustomerStore
from cxpredict.serving.api.tasks import CLOSED, TaskStore, campaign_results_frame

CONTACT_HINTS = ("email", "phone", "mobile", "contact", "address", "channel")
RESULTS_FILE = "_campaign_results.csv"


@dataclass(frozen=True)
class HandoffResult:
    files: dict[Path, int]  # file -> open tasks in it
    results_path: Path
    n_results: int


def contact_columns(columns: list[str]) -> list[str]:
    """Customers columns a front-line person contacts the customer through (by name)."""
    return [c for c in columns if any(hint in c.lower() for hint in CONTACT_HINTS)]


def handoff_table(tasks: pd.DataFrame, contacts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Open tasks as the hand-off sheet: ranked, rounded, offer names, contact columns.

    Args:
        tasks: task rows (TaskStore.frame) of one owner.
        contacts: customer_id + contact columns (optional).
    Returns:
        One row per open task, rank 1 first.
    """
    open_tasks = tasks[tasks["state"] != CLOSED].copy()
    open_tasks["_level"] = open_tasks["level"].map(LEVEL_RANK).fillna(len(LEVEL_RANK))
    open_tasks = open_tasks.sort_values(
        ["_level", "expected_value", "value", "task_id"], ascending=[True, False, False, True],
        na_position="last", kind="stable",
    )
    sheet = pd.DataFrame({
        "rank": np.arange(1, len(open_tasks) + 1),
        "customer_id": open_tasks["customer_id"].astype(str).to_numpy(),
        "level": open_tasks["level"].to_numpy(),
        "basis": open_tasks["basis"].to_numpy(),
        "reason": open_tasks["reason"].to_numpy(),
        "suggested_offer": open_tasks["strategy_name"].fillna("").to_numpy(),
        "expected_value": open_tasks["expected_value"].astype(float).round(2).to_numpy(),
        "customer_value": open_tasks["value"].astype(float).round(2).to_numpy(),
        "state": open_tasks["state"].to_numpy(),
        "task_id": open_tasks["task_id"].to_numpy(),
        "created_at": pd.to_datetime(open_tasks["created_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M").to_numpy(),
    })
    if contacts is not None and len(contacts.columns) > 1:
        sheet = sheet.merge(contacts.astype({"customer_id": str}), on="customer_id", how="left")
    return sheet


def export_handoff(store: CustomerStore, tasks: TaskStore, owners: OwnerTable, out: Path,
                   owner: str | None = None) -> HandoffResult:
    """Write `<owner_id>.csv` per owner (one owner, or every owner with open tasks) and the campaign results.

    Args:
        store: the customer store (contact columns).
        tasks: the task store.
        owners: the owners table (which owner ids exist).
        out: the folder.
        owner: only this owner (None: every owner of the table).
    Returns:
        The files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    tasks.create()
    frame = tasks.frame()
    contacts_cols: list[str] = []
    if store.refresh():
        contacts_cols = [c for c in contact_columns(list(store.columns)) if c != store.id_column]
    # Every owner gets a file (an empty one says "nothing for you today" rather than leaving them guessing).
    wanted = [owner] if owner is not None else sorted(owners.ids | set(frame.loc[frame["state"] != CLOSED, "owner_id"]))
    files: dict[Path, int] = {}
    for owner_id in wanted:
        mine = frame[frame["owner_id"] == owner_id]
        contacts = None
        if contacts_cols and len(mine):
            rows = store.get(mine["customer_id"].astype(str).unique().tolist())
            contacts = pd.DataFrame([{"customer_id": k, **{c: v.get(c) for c in contacts_cols}}
                                     for k, v in rows.items()], columns=["customer_id", *contacts_cols])
        sheet = handoff_table(mine, contacts)
        path = write_csv_atomic(sheet, out / f"{owner_id}.csv")
        files[path] = len(sheet)
    results = campaign_results_frame(frame if owner is None else frame[frame["owner_id"] == owner])
    results_path = write_csv_atomic(results, out / RESULTS_FILE)
    return HandoffResult(files, results_path, len(results))
