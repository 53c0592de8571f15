"""`cxpredict generate --texts`, `text code` and `text report` (issue 18), run as the real command."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from cxpredict.models.registry import KIND_TEXT_REPORT, TAG_KIND, TEXT_CODEFRAME_ARTIFACT, TEXT_REPORT_ARTIFACT
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli_text")
    done = run_cli("generate", "--out", str(folder / "data"), "--customers", "1500", "--survey-rate", "0.3",
                   "--texts", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "texts and" in done.stdout
    return folder


def test_text_code_writes_one_row_per_text(text_folder: Path) -> None:
    data = text_folder / "data"
    out = text_folder / "coded.csv"
    done = run_cli("text", "code", "--config", str(data / "cxpredict.yaml"), "--out", str(out), cwd=text_folder)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # jieba's start-up lines are silenced
    assert "code auc macro (held out)" in done.stdout
    coded = pd.read_csv(out)
    n_texts = len(pd.read_csv(data / "texts.csv")) + len(pd.read_csv(data / "survey.csv"))
    assert len(coded) == n_texts
    assert {"p_network", "p_leaving", "top_code", "sentiment", "evidence", "language"} <= set(coded.columns)


def test_text_report_is_html_and_logged_to_mlflow(text_folder: Path) -> None:
    data = text_folder / "data"
    out = text_folder / "texts.html"
    done = run_cli("text", "report", "--config", str(data / "cxpredict.yaml"), "--out", str(out), cwd=text_folder)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    for section in ('id="frequency"', 'id="bands"', 'id="rising"', 'id="trend"', 'id="verbatims"'):
        assert section in page
    ids = pd.read_csv(data / "survey.csv")["customer_id"]
    assert not any(i in page for i in ids.head(200))  # verbatims show masked ids only
    assert "billing complaint" in page and re.search(r"[\u4e00-\u9fff]", page)  # Chinese verbatims, as written
    mlflow.set_tracking_uri(f"sqlite:///{data / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`{TAG_KIND}` = '{KIND_TEXT_REPORT}'")
    assert len(runs) == 1
    run_id = runs["run_id"].iloc[0]
    assert runs["metrics.text_code_auc_macro"].iloc[0] > 0.8
    client = mlflow.MlflowClient()
    listed = {a.path for a in client.list_artifacts(run_id, "text")}
    assert {TEXT_REPORT_ARTIFACT, TEXT_CODEFRAME_ARTIFACT} <= listed


def test_bad_text_column_is_one_line_exit_2(text_folder: Path) -> None:
    data = text_folder / "data"
    raw = yaml.safe_load((data / "cxpredict.yaml").read_text())
    raw["survey"]["text_column"] = "why"
    (data / "bad.yaml").write_text(yaml.safe_dump(raw))
    done = run_cli("text", "code", "--config", str(data / "bad.yaml"), cwd=text_folder)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "survey.csv: column 'why' named in config key 'survey.text_column' not found" in lines[0]


def test_text_code_without_a_codeframe_is_one_line_exit_2(text_folder: Path) -> None:
    data = text_folder / "data"
    raw = yaml.safe_load((data / "cxpredict.yaml").read_text())
    raw.pop("codeframe")
    (data / "no_codeframe.yaml").write_text(yaml.safe_dump(raw))
    done = run_cli("text", "code", "--config", str(data / "no_codeframe.yaml"), cwd=text_folder)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "config key 'codeframe'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_store_load_holds_the_text_features_the_api_scores_with(text_folder: Path) -> None:
    """The API scores store rows: they carry each customer's text features, equal to what training builds."""
    from sqlalchemy import create_engine

    from cxpredict.features.config import load_config
    from cxpredict.features.load import load_dataset
    from cxpredict.features.text_features import TEXT_PREFIX, with_text_features

    config_path = text_folder / "data" / "cxpredict.yaml"
    store = text_folder / "text_store.db"
    done = run_cli("store", "load", "--config", str(config_path), "--store-url", f"sqlite:///{store}",
                   "--no-alerts", cwd=text_folder)
    assert done.returncode == 0, done.stderr
    engine = create_engine(f"sqlite:///{store}")
    try:
        stored = pd.read_sql_table("customers", engine).set_index("customer_id").sort_index()
    finally:
        engine.dispose()
    config = load_config(config_path)
    built = with_text_features(config, load_dataset(config)).customers.set_index("customer_id").sort_index()
    text_columns = [c for c in built.columns if c.startswith(TEXT_PREFIX)]
    assert len(text_columns) >= 5 and set(text_columns) <= set(stored.columns)
    assert stored[text_columns].notna().any().all()  # not a column of missing values
    pd.testing.assert_frame_equal(stored[text_columns].astype(float), built[text_columns].astype(float),
                                  check_exact=False, rtol=1e-9)
