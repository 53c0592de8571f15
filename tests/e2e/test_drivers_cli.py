"""explain, score --explain and report through the real `cxpredict` command and MLflow store."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cxpredict.features.config import load_config
from tests.conftest import assert_no_progress, run_cli

# Trains and registers a model once (the session fixture), then runs several commands: slow.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_explain_writes_tables_plots_and_logs_them(trained_company: Path, tmp_path: Path) -> None:
    out = tmp_path / "drivers"
    done = run_cli("explain", "--config", str(trained_company), "--out", str(out), "--segment-by", "segment",
                   "--target", "detractor", "--target", "churn", "--sample", "1500", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_progress(done)
    table = pd.read_csv(out / "drivers_global.csv")
    assert set(table["target"]) == {"detractor", "churn"}
    churn = table[table["target"] == "churn"]
    assert churn["share"].sum() == pytest.approx(1.0)
    used = churn["mean_abs_shap"] > 0
    assert (churn.loc[used, "se_mean_abs_shap"] > 0).all()  # a sample, so a sampling error is shown
    assert list(churn["rank"]) == list(range(1, len(churn) + 1))
    segments = pd.read_csv(out / "drivers_segments.csv")
    assert set(segments["segment"]) == {"consumer", "small_business", "enterprise"}
    assert segments["highlight"].any()
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"bar_churn.png", "beeswarm_churn.png", "segments_detractor.png"} <= plots
    assert any(p.startswith("dependence_churn_") for p in plots)
    assert "stratified random sample" in done.stdout

    run_id = re.search(r"mlflow run (\w+)", done.stdout).group(1)
    config = load_config(trained_company)
    client = mlflow.MlflowClient(tracking_uri=config.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.run_name.startswith("explain-") and run.data.tags["cxpredict.model_version"] == "1"
    logged = {a.path for a in client.list_artifacts(run_id, "drivers/plots")}
    assert "drivers/plots/bar_churn.png" in logged
    # The key-driver analysis of the rated attributes: a table in the run and on the terminal, and its plot.
    key = pd.read_csv(out / "key_drivers.csv", dtype={"segment": str})
    assert set(key["segment"]) == {"all", "consumer", "small_business", "enterprise"}
    assert sorted(key.loc[key["segment"] == "all", "attribute"]) == sorted(config.drivers)
    assert "key drivers of nps" in done.stdout and "drivers/key_drivers.csv" in {
        a.path for a in client.list_artifacts(run_id, "drivers")}
    assert "key_drivers.png" in plots


def test_score_explain_adds_flat_driver_columns(trained_company: Path, tmp_path: Path) -> None:
    scores_path = tmp_path / "scores.parquet"
    done = run_cli("score", "--config", str(trained_company), "--out", str(scores_path), "--explain", "2",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = pd.read_parquet(scores_path)
    for target in ("detractor", "expected_score", "churn"):
        for rank in (1, 2):
            assert f"driver{rank}_{target}_feature" in scores.columns
    assert "driver3_churn_feature" not in scores.columns
    schema = pq.read_schema(scores_path)
    assert str(schema.field("driver1_churn_feature").type) in ("string", "large_string")
    assert str(schema.field("driver1_churn_value").type) in ("string", "large_string")
    assert str(schema.field("driver1_churn_contribution").type) == "double"
    assert scores["driver1_churn_feature"].notna().all()


def test_report_is_one_self_contained_page(trained_company: Path, tmp_path: Path) -> None:
    done = run_cli("backtest", "--config", str(trained_company), "--survey-rate", "0.08", "--repeats", "1",
                   "--tune-trials", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_progress(done)
    report = tmp_path / "report.html"
    # `--segment`: the old spelling of --segment-by still works.
    done = run_cli("report", "--config", str(trained_company), "--out", str(report), "--segment", "segment",
                   "--target", "detractor", "--target", "churn", "--sample", "1000", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_no_progress(done)
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 6
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # nothing outside the file
    for text in ("Population score", "95 % interval", "surveyed (observed)", "silent (predicted)",
                 "Top drivers per target", "Driver differences by segment", "associations", "not proven causes",
                 "band accuracy", "Key drivers of the rated attributes", "Segments furthest from the population"):
        assert text in page, text
    # The summary in words comes first, then the table of contents, then the sections.
    assert page.index("id='summary'") < page.index("class='toc'") < page.index("id='population'")
    assert "se_mean_abs_shap" not in page and "pp of P(detractor)" in page
    # How much unobserved selection the segments' ranking withstands, the figure `segments` prints (issue 17).
    segments = run_cli("segments", "--config", str(trained_company), "--segment-by", "segment", cwd=tmp_path)
    lam = re.search(r"odds by Λ = ([0-9.]+)", segments.stdout)
    assert "Their doubly robust ranking" in page
    if lam:
        assert f"odds of answering by a factor {lam.group(1)}." in page

    # Its numbers are the explain run's it names: the top drivers and the fix-first attributes, to the digit.
    run_id = re.search(r"explain run (\w+)", done.stdout).group(1)
    config = load_config(trained_company)
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="drivers", dst_path=str(tmp_path),
                                                     tracking_uri=config.tracking_uri))
    table = pd.read_csv(local / "drivers_global.csv")
    summary = page[page.index("id='summary'"):page.index("class='toc'")]
    for row in table[table["target"] == "detractor"].head(3).itertuples():
        label = row.feature.replace("_", " ")
        assert f"{label} ({row.share:.0%} of the model's movement, {row.effect:.1f} pp" in summary
    key = pd.read_csv(local / "key_drivers.csv", dtype={"segment": str})
    for row in key[(key["segment"] == "all") & (key["quadrant"] == "fix first")].itertuples():
        assert f"({row.importance:.0%} of the explained variance, mean rating {row.performance:.1f})" in summary

    # Naming the run again reads the same figures: the driver sections are identical.
    again = tmp_path / "again.html"
    done = run_cli("report", "--config", str(trained_company), "--out", str(again), "--explain-run", run_id,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    second = again.read_text()

    def drivers_section(html: str) -> str:
        return html[html.index("<h2 id='key-drivers'>"):html.index("<h2 id='backtest'>")]

    assert drivers_section(second) == drivers_section(page)
    bad = run_cli("report", "--config", str(trained_company), "--out", str(again), "--explain-run", "nope",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "explain run 'nope' not found" in bad.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--segment-by", "favourite_colour"), "segment column 'favourite_colour' not found"),
    (("--segment", "segment", "--min-segment-size", "100000"), "below the minimum of 100000"),
    (("--target", "nps_drop"), "target 'nps_drop' is not explained"),
])
def test_explain_bad_input_is_one_line(trained_company: Path, tmp_path: Path, args: tuple[str, ...],
                                       message: str) -> None:
    done = run_cli("explain", "--config", str(trained_company), "--out", str(tmp_path / "x"), *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
