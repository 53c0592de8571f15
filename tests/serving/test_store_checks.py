"""`cxpredict store load` refuses values the champion cannot read: the API would score them as missing."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.api


def test_store_load_stops_on_a_value_the_champion_cannot_read(company_copy_factory) -> None:  # noqa: ANN001
    copy = company_copy_factory()
    store = copy.folder.parent / "cxstore.db"
    with sqlite3.connect(store) as conn:
        before = conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    customers = pd.read_parquet(copy.folder / "customers.parquet")
    customers["tenure_months"] = customers["tenure_months"].astype("string")
    customers.loc[9, "tenure_months"] = "ten"
    customers.to_parquet(copy.folder / "customers.parquet", index=False)

    done = run_cli("store", "load", "--config", str(copy.config_path), cwd=copy.folder)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {copy.folder / 'customers.parquet'}: tenure_months: 'ten' is not a finite number in rows 10"
    )
    with sqlite3.connect(store) as conn:  # the served table is left as it was
        assert conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == before == len(customers)
