"""`cxpredict score --engine spark`: a real local-mode Spark gives the in-process engine's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpredict.serving.batch.stream import REJECTS_DIR
from tests.conftest import run_cli
from tests.serving.conftest import ScaleCompany

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]


def test_score_spark_equals_local_engine(scale_company: ScaleCompany, tmp_path: Path) -> None:
    customers = pd.read_parquet(scale_company.customers)
    customers.loc[3, "customer_id"] = None  # rejected by both engines: missing id
    customers.loc[2600, "customer_id"] = customers.loc[20, "customer_id"]  # repeated in the other file
    customers["monthly_charge"] = customers["monthly_charge"].astype("string")
    customers.loc[40, "monthly_charge"] = "12,50"  # a number the model cannot read ('n/a' is a missing value)
    folder = tmp_path / "input"
    folder.mkdir()
    customers.iloc[:1500].to_parquet(folder / "a.parquet", index=False)  # pandas writes nanosecond timestamps
    customers.iloc[1500:].to_parquet(folder / "b.parquet", index=False)
    base = ["score", "--config", str(scale_company.config), "--input", str(folder), "--explain", "2"]

    local = run_cli(*base, "--out", str(tmp_path / "local"), "--chunk-rows", "1000", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    spark_args = [*base, "--out", str(tmp_path / "spark"), "--engine", "spark", "--master", "local[2]"]
    spark = run_cli(*spark_args, cwd=tmp_path, timeout=600)
    assert spark.returncode == 0, spark.stderr
    assert "input 3000 rows = scored 2997 + rejected 3" in spark.stdout

    by_local = pd.read_parquet(tmp_path / "local").set_index("customer_id").sort_index()
    by_spark = pd.read_parquet(tmp_path / "spark").set_index("customer_id").sort_index()
    assert not list((tmp_path).glob("spark.tmp-*"))
    assert by_spark.index.is_unique and by_spark.index.equals(by_local.index)
    assert list(by_spark.columns) == list(by_local.columns)
    assert {"surveyed", "observed_nps", "prediction_set", "driver2_churn_value", "problem_group",
            "problem_lift"} <= set(by_spark.columns)
    numeric = by_local.select_dtypes("number").columns
    np.testing.assert_allclose(by_spark[numeric].to_numpy(float), by_local[numeric].to_numpy(float),
                               rtol=0, atol=1e-9)
    for column in by_local.columns.difference(numeric):
        assert by_spark[column].astype(str).tolist() == by_local[column].astype(str).tolist(), column
    columns = ["input_row", "customer_id", "reason", "duplicate_of_row", "detail"]
    rejects = {name: pd.read_parquet(tmp_path / name / REJECTS_DIR)[columns].sort_values("input_row")
               .reset_index(drop=True).astype(str) for name in ("local", "spark")}
    pd.testing.assert_frame_equal(rejects["spark"], rejects["local"])
    assert rejects["spark"]["reason"].tolist() == ["missing id", "unreadable value", "duplicate id"]
    assert rejects["spark"]["detail"].iloc[1] == "monthly_charge: '12,50' is not a finite number"
    assert float(rejects["spark"]["duplicate_of_row"].iloc[2]) == 20

    # Drift counted in Spark's tasks equals the streaming engine's.
    drift = {name: pd.read_csv(tmp_path / name / "_drift.csv").set_index("feature").sort_index()
             for name in ("local", "spark")}
    np.testing.assert_allclose(drift["spark"][["psi", "unseen_share"]], drift["local"][["psi", "unseen_share"]],
                               rtol=1e-12, atol=1e-15)

    # A finished job run again does nothing; another job's folder is refused.
    again = run_cli(*spark_args, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stdout and "scored 2997" in again.stdout
    other = run_cli(*[a if a != "2" else "1" for a in spark_args], cwd=tmp_path, timeout=600)
    assert other.returncode == 2 and "different job" in other.stderr


def test_score_spark_killed_mid_job_then_rerun_has_one_row_per_customer(
    scale_company: ScaleCompany, tmp_path: Path
) -> None:
    """Kill the whole process group (driver and JVM) once Spark has started writing; run again."""
    import os
    import signal
    import subprocess
    import sys
    import time


    out = tmp_path / "scores"
    args = ["score", "--config", str(scale_company.config), "--input", str(scale_company.customers),
            "--out", str(out), "--engine", "spark", "--master", "local[2]"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "cxpredict.cli", *args], cwd=tmp_path, env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / "scores.tmp-spark"
    deadline = time.monotonic() + 300
    while not staging.exists():
        assert process.poll() is None, "the Spark job ended before it started writing"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()  # nothing under the final name

    done = run_cli(*args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "input 3000 rows = scored 3000 + rejected 0" in done.stdout
    scores = pd.read_parquet(out)
    assert len(scores) == 3000 and scores["customer_id"].is_unique
    assert not staging.exists()
