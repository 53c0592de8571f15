"""`cxpredict score --engine spark`: a real local-mode Spark gives the in-process engine's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.stream import REJECTS_DIR
from tests.conftest import run_cli
from tests.serving.conftest import ScaleCompany

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]


def test_score_spark_equals_local_engine(scale_company: ScaleCompany, tmp_path: Path) -> None:
    customers = pd.read_parquet(scale_company.customers)
    customers.loc[3, "customer_id"] = None  # rejected by both engines
    folder = tmp_path / "input"
    folder.mkdir()
    customers.iloc[:1500].to_parquet(folder / "a.parquet", index=False)  # pandas writes nanosecond timestamps
    customers.iloc[1500:].to_parquet(folder / "b.parquet", index=False)
    base = ["score", "--config", str(scale_company.config), "--input", str(folder)]

    local = run_cli(*base, "--out", str(tmp_path / "local"), "--chunk-rows", "1000", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    spark = run_cli(*base, "--out", str(tmp_path / "spark"), "--engine", "spark", "--master", "local[2]",
                    cwd=tmp_path, timeout=600)
    assert spark.returncode == 0, spark.stderr
    assert "input 3000 rows = scored 2999 + rejected 1" in spark.stdout

    by_local = pd.read_parquet(tmp_path / "local").set_index("customer_id").sort_index()
    by_spark = pd.read_parquet(tmp_path / "spark").set_index("customer_id").sort_index()
    assert not list((tmp_path).glob("spark.tmp-*"))
    assert by_spark.index.is_unique and by_spark.index.equals(by_local.index)
    assert list(by_spark.columns) == list(by_local.columns)
    numeric = by_local.select_dtypes("number").columns
    np.testing.assert_allclose(by_spark[numeric].to_numpy(), by_local[numeric].to_numpy(), rtol=0, atol=1e-9)
    assert (by_spark["model_version"] == by_local["model_version"]).all()
    rejects = pd.read_parquet(tmp_path / "spark" / REJECTS_DIR)
    assert len(rejects) == 1 and rejects["reason"].iloc[0] == "missing id"
