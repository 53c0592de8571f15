"""One table of bad values through every way in: training load, in-memory scoring, streaming, Spark, the API.

Each path must reach the verdict the table states (ok, unreadable, implausible), so they agree with
one another. Training learns the plausible range from its own rows, so there an implausible value
is "ok" (it widens the range); every other verdict is the same on all five paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from cxpredict.features.load import DataError
from cxpredict.features.validation import (
    IMPLAUSIBLE,
    UNREADABLE,
    ImplausibleValueError,
    UnreadableColumnError,
    check_rows,
    check_training_columns,
)
from cxpredict.models.registry import LoadedBundle, load_champion
from tests.serving.conftest import Company

OK = "ok"
# (feature, value as sent or written, verdict). Text values are what a CSV or a text column holds.
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("tenure_months", 12, OK),
    ("tenure_months", "12", OK),
    ("tenure_months", "12,50", UNREADABLE),
    ("tenure_months", "abc", UNREADABLE),
    ("tenure_months", "inf", UNREADABLE),
    ("tenure_months", "1e999", UNREADABLE),
    ("tenure_months", 10**400, UNREADABLE),
    ("tenure_months", 10**9, IMPLAUSIBLE),
    ("tenure_months", -500, IMPLAUSIBLE),
    ("tenure_months", "", OK),
    ("tenure_months", None, OK),
    ("monthly_charge", 1e9, IMPLAUSIBLE),
    ("monthly_charge", -3.5, IMPLAUSIBLE),
    ("monthly_charge", "89.5", OK),
    ("monthly_charge", "12,50", UNREADABLE),
    ("monthly_charge", "€89", UNREADABLE),
    ("monthly_charge", 89.5, OK),
    ("age", -500, IMPLAUSIBLE),
    ("age", 5000, IMPLAUSIBLE),
    ("age", 38, OK),
    ("age", "thirty", UNREADABLE),
    ("paperless_billing", True, OK),
    ("paperless_billing", "yes", OK),
    ("paperless_billing", "maybe", UNREADABLE),
    ("paperless_billing", 2, UNREADABLE),
    ("paperless_billing", "", OK),
    ("phone_service", "No", OK),
    ("phone_service", "perhaps", UNREADABLE),
    ("signup_date", "2024-01-31", OK),
    ("signup_date", "31/01/2024", UNREADABLE),
    ("signup_date", "2024-13-01", UNREADABLE),
    ("signup_date", "1800-01-01", IMPLAUSIBLE),
    ("signup_date", "2300-01-01", IMPLAUSIBLE),
    ("signup_date", "", OK),
    ("plan", "standard", OK),
    ("plan", "brand-new-plan", OK),
    ("plan", 3, OK),
    ("plan", "日本語 ✓", OK),
    ("network_quality", 55.0, OK),
    ("network_quality", "55.0.1", UNREADABLE),
    # A yes/no value where the model learned numbers is a type mistake: unreadable, as JSON true is.
    ("tenure_months", True, UNREADABLE),
    # Text that spells a missing value (what pandas' CSV reader reads as missing) is missing everywhere.
    ("tenure_months", "NaN", OK),
    ("monthly_charge", "NA", OK),
    ("paperless_billing", "null", OK),
    ("signup_date", "NaN", OK),
    ("tenure_months", " 12 ", OK),
    ("tenure_months", "1_000", UNREADABLE),
    ("tenure_months", "+5", OK),
    ("tenure_months", "0x1A", UNREADABLE),
    ("tenure_months", "1e1", OK),
    ("tenure_months", "２３", UNREADABLE),
    ("paperless_billing", "TRUE", OK),
    ("paperless_billing", " yes", OK),
    ("paperless_billing", 1, OK),
    ("signup_date", "2024-01-31T10:00:00", OK),
    ("signup_date", " 2024-01-31", OK),
    ("signup_date", "2024-01-31 ", OK),
    ("age", 38.5, OK),
    ("age", "-0", OK),
]
REASON_VERDICT = {UNREADABLE: UNREADABLE, IMPLAUSIBLE: IMPLAUSIBLE}
API_KIND_VERDICT = {"wrong_type": UNREADABLE, "out_of_range": IMPLAUSIBLE}


def _training_expected(verdict: str) -> str:
    return OK if verdict == IMPLAUSIBLE else verdict


def _base(company: Company) -> pd.Series:
    return company.dataset.customers.iloc[0]


def _text(value: Any) -> Any:
    return "" if value is None else str(value)


def _verdict_of_error(err: DataError | None) -> str:
    if err is None:
        return OK
    return IMPLAUSIBLE if isinstance(err, ImplausibleValueError) else UNREADABLE


def training_verdicts(company: Company, folder: Path) -> list[str]:
    """Each value in row 1 of a 300-row customers CSV, read as training reads it, then checked."""
    config = company.config
    exempt = [config.id_column, *config.features.text, *config.features.categorical, *config.features.exclude,
              *([config.value_column] if config.value_column else [])]
    out = []
    for i, (feature, value, _) in enumerate(BAD_VALUES):
        frame = company.dataset.customers.head(300).copy()
        frame[feature] = frame[feature].astype(object)
        frame.loc[0, feature] = _text(value)
        path = folder / f"train-{i}.csv"
        frame.to_csv(path, index=False)
        try:
            check_training_columns(pd.read_csv(path, low_memory=False), str(path), exempt)
            out.append(OK)
        except UnreadableColumnError:
            out.append(UNREADABLE)
    return out


def in_memory_verdicts(company: Company, loaded: LoadedBundle, folder: Path) -> list[str]:
    """Each value in a one-customer CSV, read and checked as `cxpredict score` does (named errors)."""
    out = []
    for i, (feature, value, _) in enumerate(BAD_VALUES):
        row = _base(company).to_frame().T
        row[feature] = [_text(value)]
        path = folder / f"score-{i}.csv"
        row.to_csv(path, index=False)
        error = None
        try:
            check_rows(loaded.bundle.pipeline, pd.read_csv(path, low_memory=False), str(path))
        except DataError as err:
            error = err
        out.append(_verdict_of_error(error))
    return out


def batch_input(company: Company, path: Path) -> Path:
    """Every value in its own row of one Parquet file; every column as text (the CSV of a data lake)."""
    base = _base(company)
    rows = []
    for i, (feature, value, _) in enumerate(BAD_VALUES):
        row = {k: (None if pd.isna(v) else str(v)) for k, v in base.items()}
        row[company.config.id_column] = f"P{i:03d}"
        row[feature] = None if value is None else str(value)
        rows.append(row)
    pd.DataFrame(rows).astype("string").to_parquet(path, index=False)
    return path


def verdicts_of_rejects(out: Path) -> list[str]:
    rejects = pd.read_parquet(out / "_rejects")
    by_row = dict(zip(rejects["input_row"].astype(int), rejects["reason"].astype(str), strict=True))
    return [REASON_VERDICT.get(by_row.get(i, ""), OK) for i in range(len(BAD_VALUES))]


def api_verdicts(client: httpx.Client, company: Company) -> list[str]:
    """All values in one request: the 422's field paths say which customer's feature was refused and why."""
    def as_json(value: Any) -> Any:
        if pd.isna(value):
            return None
        if isinstance(value, pd.Timestamp):
            return value.date().isoformat()
        return value.item() if hasattr(value, "item") else value

    base = {k: as_json(v) for k, v in _base(company).items()}
    customers = [{"customer_id": "new", "features": {**base, feature: value}} for feature, value, _ in BAD_VALUES]
    response = client.post("/v1/scores", json={"customers": customers})
    assert response.status_code in (200, 422), response.text
    verdicts = [OK] * len(BAD_VALUES)
    if response.status_code == 422:
        for error in response.json()["detail"]:
            loc = error["loc"]
            assert loc[:2] == ["body", "customers"] and loc[3] == "features", error
            index, feature = int(loc[2]), loc[4]
            assert feature == BAD_VALUES[index][0], error  # the field path names the bad feature
            verdicts[index] = API_KIND_VERDICT[error["type"]]
    return verdicts


def _mismatches(got: list[str], expected: list[str]) -> dict[str, tuple[str, str]]:
    return {f"{f}={v!r}": (g, e) for (f, v, _), g, e in zip(BAD_VALUES, got, expected, strict=True) if g != e}


def test_every_way_in_reaches_the_same_verdict(company: Company, client: httpx.Client, tmp_path: Path) -> None:
    from cxpredict.serving.batch.stream import score_stream

    expected = [verdict for _, _, verdict in BAD_VALUES]
    assert len(BAD_VALUES) >= 40 and {OK, UNREADABLE, IMPLAUSIBLE} <= set(expected)
    loaded = load_champion(company.config)
    paths = {
        "training load": (training_verdicts(company, tmp_path), [_training_expected(v) for v in expected]),
        "in-memory scoring": (in_memory_verdicts(company, loaded, tmp_path), expected),
    }
    score_stream(loaded, batch_input(company, tmp_path / "input.parquet"), tmp_path / "stream", chunk_rows=16)
    paths["streaming"] = (verdicts_of_rejects(tmp_path / "stream"), expected)
    paths["api"] = (api_verdicts(client, company), expected)
    wrong = {name: _mismatches(got, want) for name, (got, want) in paths.items() if got != want}
    assert not wrong, wrong


@pytest.mark.spark
def test_spark_reaches_the_streaming_verdicts(company: Company, tmp_path: Path) -> None:
    from cxpredict.serving.batch.spark import score_spark

    loaded = load_champion(company.config)
    score_spark(company.config, loaded, batch_input(company, tmp_path / "input.parquet"), tmp_path / "spark")
    got = verdicts_of_rejects(tmp_path / "spark")
    assert got == [verdict for _, _, verdict in BAD_VALUES], _mismatches(got, [v for _, _, v in BAD_VALUES])


def test_stream_missing_feature_column_stops_before_any_part(company: Company, tmp_path: Path) -> None:
    from cxpredict.features.validation import MissingColumnError
    from cxpredict.serving.batch.stream import score_stream

    loaded = load_champion(company.config)
    source = company.dataset.customers.head(50).drop(columns=["age"])
    source.to_parquet(tmp_path / "no_age.parquet", index=False)
    with pytest.raises(MissingColumnError, match=r"no_age\.parquet: column 'age' \(a model feature\) not found$"):
        score_stream(loaded, tmp_path / "no_age.parquet", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written, not even the manifest


def test_stream_plausibility_warn_scores_implausible_rows(company: Company, tmp_path: Path) -> None:
    from cxpredict.serving.batch.stream import score_stream

    loaded = load_champion(company.config)
    source = company.dataset.customers.head(20).copy()
    source.loc[3, "monthly_charge"] = 1e9
    source.to_parquet(tmp_path / "in.parquet", index=False)
    rejected = score_stream(loaded, tmp_path / "in.parquet", tmp_path / "reject")
    assert rejected.rejects_by_reason == {IMPLAUSIBLE: 1} and rejected.scored == 19
    detail = pd.read_parquet(tmp_path / "reject" / "_rejects")["detail"].iloc[0]
    assert detail.startswith("monthly_charge: 1000000000.0: value outside the plausible range")
    warned = score_stream(loaded, tmp_path / "in.parquet", tmp_path / "warn", plausibility="warn")
    assert warned.rejected == 0 and warned.scored == 20
    assert rejected.implausible_scored == 0 and warned.implausible_scored == 1  # scored anyway, and counted
    manifest = json.loads((tmp_path / "warn" / "_manifest.json").read_text())
    assert manifest["summary"]["implausible_scored"] == 1
    assert sum(part["implausible_scored"] for part in manifest["parts"].values()) == 1


@pytest.mark.spark
def test_spark_plausibility_warn_counts_like_streaming(company: Company, tmp_path: Path) -> None:
    from cxpredict.serving.batch.spark import score_spark

    loaded = load_champion(company.config)
    source = company.dataset.customers.head(20).copy()
    source.loc[[3, 7], "monthly_charge"] = 1e9
    source.to_parquet(tmp_path / "in.parquet", index=False)
    warned = score_spark(company.config, loaded, tmp_path / "in.parquet", tmp_path / "warn", plausibility="warn")
    assert warned.rejected == 0 and warned.scored == 20 and warned.implausible_scored == 2


def test_dropped_columns_are_summarised_and_tagged(company: Company) -> None:
    """Every column training dropped is a row of the train summary and in the run's tag."""
    import json

    from cxpredict.models.registry import TAG_DROPPED_COLUMNS, tracking_client
    from cxpredict.training.train import TrainResult, training_summary

    loaded = load_champion(company.config)  # a fresh load: its pipeline may be changed here
    skipped = dict(loaded.bundle.pipeline.skipped_)
    tags = tracking_client(company.config.tracking_uri).get_run(loaded.run_id).data.tags
    assert json.loads(tags[TAG_DROPPED_COLUMNS]) == sorted(skipped)
    loaded.bundle.pipeline.skipped_ = {**skipped, "crm_notes": "all values missing"}
    rows = [r for r in training_summary(TrainResult("run", "m", "1", {}, loaded.bundle)) if r.model == "dropped column"]
    assert [(r.figure, r.value) for r in rows] == sorted({**skipped, "crm_notes": "all values missing"}.items())
