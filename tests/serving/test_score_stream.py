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

from cxpredict.features.config import load_config
from cxpredict.models.bundle import predict_uncertainty
from cxpredict.models.drift import drift_report
from cxpredict.models.explain import explain_top_k
from cxpredict.models.registry import load_champion
from cxpredict.serving.batch.stream import (
    MANIFEST,
    REJECTS_DIR,
    SUCCESS,
    find_duplicate_rows,
    input_files,
    split_rejects,
)
from tests.conftest import run_cli
from tests.serving.conftest import ScaleCompany

pytestmark = pytest.mark.e2e


def _with_bad_rows(customers: pd.DataFrame) -> pd.DataFrame:
    """Five unscorable rows: a missing id, an id repeated in its chunk, an id repeated in another
    file (so another chunk), a row with no feature values, a number that is not one."""
    frame = customers.copy()
    frame["tenure_months"] = frame["tenure_months"].astype("string")  # as a CSV export may give it
    frame.loc[1200, "tenure_months"] = "abc"
    frame.loc[5, "customer_id"] = None
    frame.loc[7, "customer_id"] = frame.loc[6, "customer_id"]
    frame.loc[2500, "customer_id"] = " " + frame.loc[10, "customer_id"]  # ids compare stripped
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
                   "--chunk-rows", "500", "--explain", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary_counts(done.stdout) == (3000, 2995, 5)
    assert "scoring" not in done.stderr  # no progress bar when stderr is not a terminal

    scores = pd.read_parquet(out)  # the rejects folder starts with '_': readers of the folder skip it
    rejects = pd.read_parquet(out / REJECTS_DIR).sort_values("input_row")
    assert len(scores) + len(rejects) == len(bad)
    assert scores["customer_id"].is_unique
    assert rejects["input_row"].tolist() == [5, 7, 11, 1200, 2500]
    assert rejects["reason"].tolist() == [
        "missing id", "duplicate id", "no feature values", "unreadable value", "duplicate id"]
    assert rejects["duplicate_of_row"].fillna(-1).astype(int).tolist() == [-1, 6, -1, -1, 10]
    assert rejects["detail"].fillna("").tolist() == ["", "", "", "tenure_months: 'abc' is not a finite number", ""]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and (out / SUCCESS).is_file()
    assert len(manifest["parts"]) == 7  # chunks never span files: 1800 rows -> 4 parts, 1200 rows -> 3
    assert manifest["summary"]["scored"] + manifest["summary"]["rejected"] == 3000

    # The same numbers as scoring in memory: predictions, uncertainty, drivers, survey columns.
    loaded = load_champion(load_config(scale_company.config))
    bundle = loaded.bundle
    kept = customers.drop(index=[5, 7, 11, 1200, 2500])
    expected = bundle.predict(kept, threads=1)
    expected = pd.concat([expected, predict_uncertainty(bundle, kept, expected),
                          explain_top_k(bundle, kept, 2)], axis=1)
    got = scores.set_index("customer_id").loc[expected["customer_id"]].reset_index()
    expected = expected.reset_index(drop=True)
    numeric = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    np.testing.assert_allclose(got[numeric].to_numpy(float), expected[numeric].to_numpy(float), rtol=0, atol=1e-12)
    for column in expected.columns.difference(numeric):
        assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), column
    assert "driver2_churn_contribution" in got.columns and "prediction_set" in got.columns
    assert {"problem_group", "problem_lift"} <= set(got.columns)  # the streamed table carries problem groups
    assert set(got["model_version"]) == {loaded.version}
    survey = pd.read_csv(scale_company.folder / "survey.csv", dtype={"customer_id": str}).set_index("customer_id")
    assert got["surveyed"].tolist() == got["customer_id"].isin(survey.index).tolist()
    answered = got[got["surveyed"]]
    assert len(answered) > 500
    assert answered["observed_nps"].tolist() == survey.loc[answered["customer_id"], "nps"].tolist()
    assert got.loc[~got["surveyed"], "observed_nps"].isna().all()

    # Drift counted chunk by chunk equals the drift of all scored rows at once.
    streamed_drift = pd.read_csv(out / "_drift.csv").set_index("feature").sort_index()
    in_memory = drift_report(bundle.drift_reference, bundle.pipeline, kept).set_index("feature").sort_index()
    np.testing.assert_allclose(streamed_drift[["psi", "unseen_share"]], in_memory[["psi", "unseen_share"]],
                               rtol=1e-12, atol=1e-15)
    assert "drift: max PSI" in done.stdout


@pytest.mark.unit
def test_find_duplicate_rows_across_files_and_chunks(tmp_path: Path) -> None:
    ids = ["a", "b", "c", None, "a", "d", " b", "", "a", "e"]
    pd.DataFrame({"customer_id": ids[:4]}).to_parquet(tmp_path / "1.parquet")
    pd.DataFrame({"other": range(3)}).to_parquet(tmp_path / "2.parquet")  # no id column: rows 4-6
    pd.DataFrame({"customer_id": ids[4:]}).to_parquet(tmp_path / "3.parquet")
    files = input_files(tmp_path)
    duplicates = find_duplicate_rows(files, "customer_id", chunk_rows=2)
    # rows: 0 a, 1 b, 2 c, 3 None, [4-6 no id], 7 a, 8 d, 9 " b", 10 "", 11 a, 12 e
    assert duplicates.rows.tolist() == [7, 9, 11] and duplicates.first.tolist() == [0, 1, 0]
    positions, first = duplicates.within(8, 12)
    assert positions.tolist() == [1, 3] and first.tolist() == [1, 0]
    assert find_duplicate_rows(files[:1], "customer_id", chunk_rows=2).rows.size == 0
    # Past the in-memory limit the hashes spill to disk in buckets: the same answer, no files left.
    spilled = find_duplicate_rows(files, "customer_id", chunk_rows=2, spill_dir=tmp_path / "_dedup",
                                  max_memory_rows=3)
    assert spilled.rows.tolist() == [7, 9, 11] and spilled.first.tolist() == [0, 1, 0]
    assert not (tmp_path / "_dedup").exists()


def test_score_stream_killed_then_rerun_has_one_row_per_customer(
    scale_company: ScaleCompany, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    args = ["score", "--config", str(scale_company.config), "--input", str(scale_company.customers),
            "--out", str(out), "--chunk-rows", "100"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "cxpredict.cli", *args], cwd=tmp_path, env=env,
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
    # Output options change the parts' columns: they are part of the job too.
    done = run_cli(*base, "--chunk-rows", "1000", "--no-survey-columns", cwd=tmp_path)
    assert done.returncode == 2 and "different job" in done.stderr
    done = run_cli(*base[:-1], str(tmp_path / "typo"), "--explain-target", "churm", cwd=tmp_path)
    assert done.returncode == 2 and "churm" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "typo" / "part-00000.parquet").exists()
    plain = tmp_path / "plain"
    survey = scale_company.folder / "survey.csv"
    survey.rename(survey.with_suffix(".away"))  # a scoring machine without the survey
    try:
        done = run_cli(*base[:-1], str(plain), cwd=tmp_path)
        assert done.returncode == 2 and "--no-survey-columns scores without them" in done.stderr
        done = run_cli(*base[:-1], str(plain), "--no-survey-columns", cwd=tmp_path)
    finally:
        survey.with_suffix(".away").rename(survey)
    assert done.returncode == 0, done.stderr
    assert "surveyed" not in pd.read_parquet(plain).columns and "surveyed" in pd.read_parquet(out).columns


@pytest.mark.unit
def test_split_rejects_reasons() -> None:
    frame = pd.DataFrame({"id": ["a", None, " ", "a", "b"], "x": [1.0, 2.0, 3.0, 4.0, np.nan]})
    X = frame[["x"]].to_numpy()
    keep, reasons = split_rejects(frame, X, "id")
    assert keep.tolist() == [True, False, False, False, False]
    assert reasons.tolist() == ["", "missing id", "missing id", "duplicate id", "no feature values"]
    keep, reasons = split_rejects(frame, X, "id", duplicate_positions=np.array([4]))  # repeated in another chunk
    assert reasons.tolist() == ["", "missing id", "missing id", "", "duplicate id"]
    problems = np.array(["x: 'abc' is not a finite number", "", "", "", ""], dtype=object)
    keep, reasons = split_rejects(frame, X, "id", problems=problems)
    assert reasons.tolist() == ["unreadable value", "missing id", "missing id", "duplicate id", "no feature values"]
    assert not keep.any()


def test_score_stream_names_a_file_that_is_not_parquet(scale_company: ScaleCompany, tmp_path: Path) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    pd.read_parquet(scale_company.customers).head(50).to_parquet(folder / "a.parquet", index=False)
    (folder / "b.parquet").write_text("customer_id,tenure\nC1,3\n")  # a CSV under a Parquet name
    done = run_cli("score", "--config", str(scale_company.config), "--input", str(folder),
                   "--out", str(tmp_path / "scores"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {folder / 'b.parquet'}: not a readable Parquet file")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "scores" / "part-00000.parquet").exists()
