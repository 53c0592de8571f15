"""train → score through the CLI with a PostgreSQL tracking store (a fresh database per test).

Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth, user postgres). An unreachable server
is a failure, not a skip: CI starts it (.ci/run); locally run
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or deselect with
`-m "not postgres"`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from cxpredict.features.synthetic import generate_company, write_company
from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]



def test_train_and_score_with_postgres_tracking(postgres_database: str, tmp_path: Path) -> None:
    data = tmp_path / "company"
    config_path = write_company(generate_company(2000, 0.25, seed=5), data, name="pg")
    raw = yaml.safe_load(config_path.read_text())
    # A password in the URI (the local server trusts, so any password connects): never printed or logged.
    with_password = postgres_database.replace("postgres@", "postgres:s3cret-pw@")
    raw["mlflow"] = {"tracking_uri": with_password, "artifact_location": (tmp_path / "artifacts").as_uri()}
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    done = run_cli("train", "--config", str(config_path), "--tune-trials", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"tracking store: {with_password.replace('s3cret-pw', '***')}" in done.stdout
    assert "s3cret-pw" not in done.stdout + done.stderr

    client = mlflow.MlflowClient(tracking_uri=postgres_database, registry_uri=postgres_database)
    champion = client.get_model_version_by_alias("cxpredict-pg", "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.data.metrics["n_customers"] == 2000
    assert run.data.params["tune_trials"] == "2"
    assert not [k for k, v in {**run.data.params, **run.data.tags}.items() if "s3cret-pw" in v]
    nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(nested) >= 10  # the Optuna trials, in PostgreSQL too
    assert (tmp_path / "artifacts").is_dir()  # artifacts where the config put them
    assert not (data / "mlflow.db").exists()  # nothing fell back to the default SQLite store

    scores_path = tmp_path / "scores.parquet"
    done = run_cli("score", "--config", str(config_path), "--out", str(scores_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    scores = pd.read_parquet(scores_path)
    assert len(scores) == 2000 and scores["customer_id"].is_unique
    assert set(scores["model_version"]) == {"1"}
    assert scores["churn_probability"].between(0, 1).all()
