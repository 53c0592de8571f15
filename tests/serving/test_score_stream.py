"""Streaming `cxpredict score --input`: same numbers as in-memory scoring, rejects, manifest, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import load_config
from serving.batch import load_champion
from serving.stream import MANIFEST, REJECTS_DIR, SUCCESS, split_rejects
from tests.conftest import REPO_ROOT, run_cli
from tests.serving.conftest import ScaleCompany

pytestmark = pytest.mark.e2e


def _with_bad_rows(customers: pd.DataFrame) -> pd.DataFrame:
    """Three unscorable rows: a missing id, a repeated id, a row with no feature values."""
    frame = customers.copy()
    frame.loc[5, "customer_id"] = None
    frame.loc[7, "customer_id"] = frame.loc[6, "customer_id"]
    for column in frame.columns.drop("customer_id"):
        if pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype("boolean")
        elif pd.api.types.is_integer_dtype(frame[column]):
            frame[column] = frame[column].astype("Int64")
        frame.loc[11, column] = None
    return frame


def _summary_counts(stdout: str) -> tuple[int, int, int]:
    words = stdout.split()
    return int(words[words.index("input") + 1]), int(words[words.index("scored") + 1]), int(
        words[words.index("rejected") + 1])


def test_score_stream_folder_matches_in_memory_with_rejects(scale_company: ScaleCompany, tmp_path: Path) -> None:
    customers = pd.read_parquet(scale_company.customers)
    bad = _with_bad_rows(customers)
    folder = tmp_path / "input"
    folder.mkdir()
    bad.iloc[:1800].to_parquet(folder / "a.parquet", index=False)  # two files: rows keep their global order
    bad.iloc[1800:].to_parquet(folder / "b.parquet", index=False)
    out = tmp_path / "scores"

    done = run_cli("score", "--config", str(scale_company.config), "--input", str(folder), "--out", str(out),
                   "--chunk-rows", "500", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary_counts(done.stdout) == (3000, 2997, 3)
    assert "scoring" not in done.stderr  # no progress bar when stderr is not a terminal

    scores = pd.read_parquet(out)  # the rejects folder starts with '_': readers of the folder skip it
    rejects = pd.read_parquet(out / REJECTS_DIR)
    assert len(scores) + len(rejects) == len(bad)
    assert scores["customer_id"].is_unique
    assert sorted(rejects["input_row"]) == [5, 7, 11]
    assert dict(zip(rejects["input_row"], rejects["reason"], strict=True)) == {
        5: "missing id", 7: "duplicate id in its chunk", 11: "no feature values"}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and (out / SUCCESS).is_file()
    assert len(manifest["parts"]) == 7  # chunks never span files: 1800 rows -> 4 parts, 1200 rows -> 3
    assert manifest["summary"]["scored"] + manifest["summary"]["rejected"] == 3000

    loaded = load_champion(load_config(scale_company.config))
    expected = loaded.bundle.predict(customers.drop(index=[5, 7, 11]), threads=1).reset_index(drop=True)
    got = scores.sort_values("customer_id", kind="stable").reset_index(drop=True)
    expected = expected.sort_values("customer_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="model_version"), expected, check_exact=False, atol=1e-12)
    assert set(got["model_version"]) == {loaded.version}


def test_score_stream_killed_then_rerun_has_one_row_per_customer(
    scale_company: ScaleCompany, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    args = ["score", "--config", str(scale_company.config), "--input", str(scale_company.customers),
            "--out", str(out), "--chunk-rows", "100"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "part-00000.parquet").exists():
        assert process.poll() is None, "the scoring process ended before writing a part"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / SUCCESS).exists(), "the job finished before it could be killed"
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {"parts": {}}
    finished_before = len(manifest["parts"])
    assert finished_before < 30

    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary_counts(done.stdout) == (3000, 3000, 0)
    assert f"({finished_before} resumed)" in done.stdout
    assert not list(out.glob(".*.tmp-*"))
    scores = pd.read_parquet(out)
    customers = pd.read_parquet(scale_company.customers, columns=["customer_id"])
    assert len(scores) == len(customers) and scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(customers["customer_id"])

    fresh = tmp_path / "fresh"
    done = run_cli(*args[:-3], str(fresh), "--chunk-rows", "100", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(scores, pd.read_parquet(fresh))  # resumed output == uninterrupted output


def test_score_stream_refuses_another_jobs_folder(scale_company: ScaleCompany, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    base = ["score", "--config", str(scale_company.config), "--input", str(scale_company.customers),
            "--out", str(out)]
    assert run_cli(*base, "--chunk-rows", "1000", cwd=tmp_path).returncode == 0
    done = run_cli(*base, "--chunk-rows", "700", cwd=tmp_path)
    assert done.returncode == 2
    assert "different job" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.unit
def test_split_rejects_reasons() -> None:
    frame = pd.DataFrame({"id": ["a", None, " ", "a", "b"], "x": [1.0, 2.0, 3.0, 4.0, np.nan]})
    X = frame[["x"]].to_numpy()
    keep, reasons = split_rejects(frame, X, "id")
    assert keep.tolist() == [True, False, False, False, False]
    assert reasons.tolist() == ["", "missing id", "missing id", "duplicate id in its chunk", "no feature values"]
