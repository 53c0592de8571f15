"""Every rule of the data contract, checked at load time with one line naming file, column and rows.

Each test breaks one rule in an otherwise valid small dataset written to CSV, so the message is
checked exactly as a user would see it (rows are 1-based data rows, header excluded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cxpredict.features.config import ConfigError, CxConfig, load_config
from cxpredict.features.load import DataError, load_dataset
from cxpredict.models.bundle import ScoringBundle
from cxpredict.training.train import fit_models, train
from tests.conftest import run_cli

pytestmark = pytest.mark.data

Tables = dict[str, pd.DataFrame]


def valid_tables() -> Tables:
    ids = [f"C{i}" for i in range(1, 11)]
    return {
        "customers": pd.DataFrame({
            "customer_id": ids,
            "plan": ["basic", "premium", "basic", "standard", "premium", "basic", "standard", "basic", "premium",
                     "basic"],
            "tenure_months": [3, 40, 12, 7, 60, 1, 24, 36, 5, 18],
            "clv": [300.0, 4000.0, 900.0, 500.0, 5200.0, 150.0, 2000.0, 2600.0, 700.0, 1200.0],
        }),
        "survey": pd.DataFrame({
            "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
            "nps": [9, 3, 7, 10, 0, 6],
            "causes": ["", "price;network", "support", "", "price", "network"],
            "rating_network": [9, 2, 6, 10, 1, 4],
        }),
        "outcomes": pd.DataFrame({"customer_id": ids, "churned": [0, 1, 0, 0, 1, 1, 0, 0, 0, 1]}),
        "campaigns": pd.DataFrame({
            "customer_id": ["C1", "C2", "C3", "C4"], "strategy": ["discount"] * 4, "treated": [1, 0, 1, 0],
        }),
    }


def valid_raw() -> dict[str, Any]:
    return {
        "name": "tiny",
        "id_column": "customer_id",
        "data": {"customers": "customers.csv", "survey": "survey.csv", "outcomes": "outcomes.csv",
                 "campaigns": "campaigns.csv"},
        "features": {"exclude": ["clv"], "categorical": ["plan"]},
        "value_column": "clv",
        "score": {"column": "nps", "scale": [0, 10],
                  "bands": {"detractor": [0, 6], "passive": [7, 8], "promoter": [9, 10]}},
        "causes": {"column": "causes"},
        "drivers": ["rating_network"],
        "churn": {"column": "churned"},
    }


def write_dataset(folder: Path, tables: Tables | None = None, raw: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (tables or valid_tables()).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    path = folder / "cxpredict.yaml"
    path.write_text(yaml.safe_dump(raw or valid_raw(), sort_keys=False))
    return path


def load_error(folder: Path, tables: Tables | None = None, raw: dict[str, Any] | None = None) -> str:
    config = load_config(write_dataset(folder, tables, raw))
    with pytest.raises(DataError) as err:
        load_dataset(config)
    message = str(err.value)
    assert "\n" not in message, "one readable line"
    return message


def changed(table: str, edit: Callable[[pd.DataFrame], pd.DataFrame | None]) -> Tables:
    tables = valid_tables()
    result = edit(tables[table])
    if result is not None:
        tables[table] = result
    return tables


def test_the_valid_dataset_loads(tmp_path: Path) -> None:
    dataset = load_dataset(load_config(write_dataset(tmp_path)))
    assert len(dataset.customers) == 10 and len(dataset.survey) == 6
    assert dataset.cause_codes == ["network", "price", "support"]
    assert dataset.causes is not None and dataset.causes["price"].tolist() == [0, 1, 0, 0, 1, 0]
    assert dataset.outcomes is not None and dataset.outcomes["churned"].sum() == 4
    assert dataset.campaigns is not None and dataset.campaigns["treated"].tolist() == [1, 0, 1, 0]


# --- ids ------------------------------------------------------------------------------------


def test_missing_id_column(tmp_path: Path) -> None:
    tables = changed("customers", lambda f: f.rename(columns={"customer_id": "cust"}))
    message = load_error(tmp_path, tables)
    assert message.startswith(f"{tmp_path / 'customers.csv'}: id column 'customer_id' not found")
    assert "'cust'" in message  # the columns that are there


@pytest.mark.parametrize("table", ["customers", "survey", "outcomes"])
def test_duplicate_ids(tmp_path: Path, table: str) -> None:
    def duplicate(frame: pd.DataFrame) -> None:
        frame.loc[3, "customer_id"] = frame.loc[1, "customer_id"]  # data rows 2 and 4

    message = load_error(tmp_path, changed(table, duplicate))
    assert message == f"{tmp_path / f'{table}.csv'}: column 'customer_id': duplicate id 'C2' in rows 2, 4"


def test_missing_ids(tmp_path: Path) -> None:
    def blank(frame: pd.DataFrame) -> None:
        frame.loc[[2, 6], "customer_id"] = None

    message = load_error(tmp_path, changed("customers", blank))
    assert message == f"{tmp_path / 'customers.csv'}: column 'customer_id': missing id in rows 3, 7"


def test_many_offending_rows_are_counted_not_listed(tmp_path: Path) -> None:
    def blank(frame: pd.DataFrame) -> None:
        frame.loc[1:8, "customer_id"] = None

    message = load_error(tmp_path, changed("customers", blank))
    assert message.endswith("missing id in rows 2, 3, 4, 5, 6 and 3 more")


@pytest.mark.parametrize(
    ("table", "what"), [("survey", "survey row"), ("outcomes", "outcome"), ("campaigns", "campaign row")]
)
def test_rows_for_unknown_customers(tmp_path: Path, table: str, what: str) -> None:
    def stranger(frame: pd.DataFrame) -> None:
        frame.loc[2, "customer_id"] = "C99"

    message = load_error(tmp_path, changed(table, stranger))
    assert message == (
        f"{tmp_path / f'{table}.csv'}: column 'customer_id': {what} for unknown customer 'C99' in rows 3"
    )


# --- scores ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({1: 11}, "score 11 is outside the scale 0..10 in rows 2"),
        ({1: -1, 4: 12}, "score -1 is outside the scale 0..10 in rows 2, 5"),
        ({3: 7.5}, "score 7.5 is not a whole number (the scale is 0..10) in rows 4"),
        ({2: "seven"}, "score 'seven' is not numeric in rows 3"),
        ({5: None}, "missing score in rows 6"),
    ],
)
def test_bad_scores(tmp_path: Path, values: dict[int, Any], expected: str) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({"nps": object})
        for row, value in values.items():
            frame.loc[row, "nps"] = value
        return frame

    message = load_error(tmp_path, changed("survey", edit))
    assert message == f"{tmp_path / 'survey.csv'}: column 'nps': {expected}"


def test_band_definition_not_covering_the_scale(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["score"]["bands"] = {"detractor": [0, 6], "promoter": [9, 10]}
    path = write_dataset(tmp_path, raw=raw)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}: key 'score': score.bands do not cover the scale: no band holds [7, 8]"
    )


def test_empty_survey(tmp_path: Path) -> None:
    tables = changed("survey", lambda f: f.iloc[0:0])
    message = load_error(tmp_path, tables)
    assert message == f"{tmp_path / 'survey.csv'}: the survey is empty: no respondent to learn from"


# --- columns the config names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "edit", "file"),
    [
        ("features.exclude", lambda r: r["features"].update(exclude=["cltv"]), "customers"),
        ("features.categorical", lambda r: r["features"].update(categorical=["plan_type"]), "customers"),
        ("value_column", lambda r: r.update(value_column="lifetime_value"), "customers"),
        ("score.column", lambda r: r["score"].update(column="csat"), "survey"),
        ("drivers", lambda r: r.update(drivers=["rating_network", "rating_price"]), "survey"),
        ("causes.column", lambda r: r.update(causes={"column": "reasons"}), "survey"),
        ("causes.columns", lambda r: r.update(causes={"columns": ["cause_price"]}), "survey"),
        ("churn.column", lambda r: r.update(churn={"column": "churn_flag"}), "outcomes"),
    ],
)
def test_unknown_columns_named_in_the_config(
    tmp_path: Path, key: str, edit: Callable[[dict[str, Any]], None], file: str
) -> None:
    raw = valid_raw()
    edit(raw)
    message = load_error(tmp_path, raw=raw)
    missing = {
        "features.exclude": "cltv", "features.categorical": "plan_type", "value_column": "lifetime_value",
        "score.column": "csat", "drivers": "rating_price", "causes.column": "reasons",
        "causes.columns": "cause_price", "churn.column": "churn_flag",
    }[key]
    assert message.startswith(
        f"{tmp_path / f'{file}.csv'}: column '{missing}' named in config key '{key}' not found; columns are ["
    )


def test_file_entry_columns_must_exist(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["data"]["customers"] = ["customers.csv", {"path": "outcomes.csv", "columns": ["churn_reason"]}]
    message = load_error(tmp_path, raw=raw)
    assert message.startswith(f"{tmp_path / 'outcomes.csv'}: column 'churn_reason' not found")


# --- causes, drivers, churn, campaigns ------------------------------------------------------


def test_cause_column_without_any_code(tmp_path: Path) -> None:
    tables = changed("survey", lambda f: f.assign(causes=["", None, " ", "", None, ""]))
    message = load_error(tmp_path, tables)
    assert message == f"{tmp_path / 'survey.csv'}: column 'causes': no cause code appears in any survey row"


def test_cause_flags_must_be_0_or_1(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["causes"] = {"columns": ["cause_price", "cause_network"]}
    tables = changed("survey", lambda f: f.assign(cause_price=[0, 1, 0, 0, 1, 0], cause_network=[0, 1, 2, 0, 0, 1]))
    message = load_error(tmp_path, tables, raw)
    assert message == f"{tmp_path / 'survey.csv'}: column 'cause_network': cause flags must be 0/1 in rows 3"


def test_driver_rating_not_numeric(tmp_path: Path) -> None:
    tables = changed("survey", lambda f: f.assign(rating_network=[9, 2, "good", 10, 1, 4]))
    message = load_error(tmp_path, tables)
    assert message == f"{tmp_path / 'survey.csv'}: column 'rating_network': driver rating is not numeric in rows 3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, "churn flag must be 0 or 1, got '2' in rows 4"), ("yes", "churn flag must be 0 or 1, got 'yes' in rows 4"),
     (None, "missing churn flag in rows 4")],
)
def test_churn_flag_not_0_or_1(tmp_path: Path, value: Any, expected: str) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({"churned": object})
        frame.loc[3, "churned"] = value
        return frame

    message = load_error(tmp_path, changed("outcomes", edit))
    assert message == f"{tmp_path / 'outcomes.csv'}: column 'churned': {expected}"


def test_campaign_treated_not_0_or_1(tmp_path: Path) -> None:
    tables = changed("campaigns", lambda f: f.assign(treated=[1, "yes", 1, 0]))
    message = load_error(tmp_path, tables)
    assert message == (
        f"{tmp_path / 'campaigns.csv'}: column 'treated': treated flag must be 0 or 1, got 'yes' in rows 2"
    )


def test_campaign_needs_strategy_and_treated_columns(tmp_path: Path) -> None:
    tables = changed("campaigns", lambda f: f.drop(columns="strategy"))
    message = load_error(tmp_path, tables)
    assert message.startswith(f"{tmp_path / 'campaigns.csv'}: column 'strategy' named in config key 'data.campaigns'")


# --- files ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    (tmp_path / "outcomes.csv").unlink()
    with pytest.raises(DataError) as err:
        load_dataset(load_config(path))
    assert str(err.value) == f"{tmp_path / 'outcomes.csv'}: file not found"


def test_unreadable_file(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["data"]["customers"] = "customers.parquet"
    path = write_dataset(tmp_path, raw=raw)
    (tmp_path / "customers.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError) as err:
        load_dataset(load_config(path))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'customers.parquet'}: cannot read: ") and "\n" not in message


def test_unsupported_file_type(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["data"]["survey"] = "survey.xlsx"
    path = write_dataset(tmp_path, raw=raw)
    (tmp_path / "survey.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as err:
        load_dataset(load_config(path))
    assert str(err.value) == f"{tmp_path / 'survey.xlsx'}: unsupported file type '.xlsx' (use .csv or .parquet)"


def test_outcomes_required_for_churn_training(tmp_path: Path) -> None:
    raw = valid_raw()
    del raw["data"]["outcomes"]
    with pytest.raises(DataError, match=r"churn training needs an outcomes table \(data\.outcomes\)"):
        load_dataset(load_config(write_dataset(tmp_path, raw=raw)), require_outcomes=True)


# --- too few respondents --------------------------------------------------------------------


def test_too_few_respondents_through_train(tmp_path: Path) -> None:
    config = load_config(write_dataset(tmp_path))
    with pytest.raises(DataError) as err:
        train(config, tune_trials=1)
    assert str(err.value) == (
        f"{tmp_path / 'survey.csv'}: 6 respondents; training needs at least 50 (training.min_respondents)"
    )
    assert not (tmp_path / "mlflow.db").exists(), "refused before any MLflow run is opened"


def test_too_few_respondents_through_the_trainer(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["training"] = {"min_respondents": 7}
    config = load_config(write_dataset(tmp_path, raw=raw))
    with pytest.raises(DataError) as err:
        fit_models(config, load_dataset(config), tune_trials=1, log_trials=False)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'survey.csv'}: 6 respondents;")
    assert "needs at least 7 (training.min_respondents)" in message


# --- through the command --------------------------------------------------------------------


def assert_one_line_error(done: Any, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_train_refuses_a_score_outside_the_scale(tmp_path: Path) -> None:
    tables = changed("survey", lambda f: f.assign(nps=[9, 3, 7, 11, 0, 6]))
    config = write_dataset(tmp_path / "data", tables)
    done = run_cli("train", "--config", str(config), "--tune-trials", "1", cwd=tmp_path)
    assert_one_line_error(
        done, "error: ", str(tmp_path / "data" / "survey.csv"), "column 'nps'", "score 11 is outside", "rows 4"
    )
    assert not (tmp_path / "data" / "mlflow.db").exists()


def test_cli_score_refuses_duplicate_customers(tmp_path: Path) -> None:
    def duplicate(frame: pd.DataFrame) -> None:
        frame.loc[9, "customer_id"] = "C1"

    config = write_dataset(tmp_path / "data", changed("customers", duplicate))
    done = run_cli("score", "--config", str(config), "--out", str(tmp_path / "scores.parquet"), cwd=tmp_path)
    assert_one_line_error(done, str(tmp_path / "data" / "customers.csv"), "duplicate id 'C1'", "rows 1, 10")
    assert not (tmp_path / "scores.parquet").exists()


def test_cli_train_says_how_many_respondents_it_needs(tmp_path: Path) -> None:
    config = write_dataset(tmp_path / "data")
    done = run_cli("train", "--config", str(config), cwd=tmp_path)
    assert_one_line_error(done, "6 respondents; training needs at least 50")


# --- scoring is lenient: unknown categories and missing values are not errors ---------------


@pytest.mark.model  # needs the session's trained model
def test_scoring_handles_unseen_categories_and_missing_values(
    small_training: Any, small_config: CxConfig
) -> None:
    bundle: ScoringBundle = small_training.bundle
    original = load_dataset(small_config).customers.head(40).drop(columns=["age"])  # a column absent
    customers = original.astype({c: object for c in ("segment", "plan", "contract")})
    customers.loc[0:9, "plan"] = "platinum"  # never seen in training
    customers.loc[5:14, "segment"] = None
    customers.loc[10:19, "tenure_months"] = np.nan  # an int column with gaps, as a CSV would give it
    customers.loc[15:24, ["monthly_charge", "signup_date", "network_quality"]] = None
    customers.loc[20:29, "contract"] = np.nan
    scores = bundle.predict(customers)
    assert len(scores) == 40 and scores["customer_id"].tolist() == customers["customer_id"].tolist()
    assert set(scores["problem_group"]) <= {*bundle.cause_base_rates, "none"}
    assert np.isfinite(scores.drop(columns=["customer_id", "problem_group"]).to_numpy(float)).all()
    probabilities = scores[[c for c in scores.columns if c.startswith("p_") or c == "churn_probability"]]
    assert ((probabilities >= 0) & (probabilities <= 1)).all().all()
    bands = scores[["p_detractor", "p_passive", "p_promoter"]].sum(axis=1)
    np.testing.assert_allclose(bands, 1.0, atol=1e-9)
    # The damaged rows score differently from their clean selves; the untouched rows exactly the same.
    clean = bundle.predict(original)
    assert not np.allclose(scores["expected_score"][:30], clean["expected_score"][:30])
    pd.testing.assert_frame_equal(scores.iloc[30:], clean.iloc[30:], check_exact=True)


def test_survey_not_utf8_names_the_row(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    survey = tmp_path / "survey.csv"
    lines = survey.read_text().splitlines()
    lines[3] = lines[3].replace("C3", "C3\u00e9", 1)
    survey.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_dataset(load_config(path))
    assert str(err.value) == f"{survey}: row 3 (line 4): not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_cli_train_stops_on_an_unreadable_number(tmp_path: Path) -> None:
    """One '12,50' would turn tenure_months into text and the model would train without it: it stops."""
    def comma(frame: pd.DataFrame) -> None:
        frame["tenure_months"] = frame["tenure_months"].astype(object)
        frame.loc[3, "tenure_months"] = "12,50"

    raw = valid_raw()
    raw["training"] = {"min_respondents": 5}
    config = write_dataset(tmp_path / "data", changed("customers", comma), raw)
    done = run_cli("train", "--config", str(config), "--tune-trials", "1", cwd=tmp_path)
    assert_one_line_error(done, str(tmp_path / "data" / "customers.csv"), "column 'tenure_months'",
                          "'12,50' is not a finite number in rows 4", "features.text")
    assert not (tmp_path / "data" / "mlflow.db").exists(), "refused before any MLflow run is opened"
    raw["features"] = {"text": ["tenure_months"]}
    (tmp_path / "data" / "cxpredict.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    from cxpredict.features.validation import check_training_customers

    config_marked = load_config(tmp_path / "data" / "cxpredict.yaml")
    check_training_customers(config_marked, load_dataset(config_marked).customers, "customers.csv")  # no stop
