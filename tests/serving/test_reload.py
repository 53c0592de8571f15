"""Model updates: reload swaps atomically under traffic; a broken or mismatched model is refused and the old one serves.

Runs on a copy of the company (its own registry and store): new versions are registered from the
champion's artifacts, from a bundle whose feature schema the store does not have, and from an
empty artifact folder.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from cxpredict.features.build import CATEGORICAL, FeatureSpec
from cxpredict.models.bundle_files import BundleIntegrityError
from cxpredict.models.registry import BUNDLE_ARTIFACT, MODEL_CODE_FILE, download_checked_model, load_registered_bundle
from cxpredict.serving.api.model import ModelManager
from cxpredict.serving.api.settings import default_store_url
from cxpredict.serving.api.store import CustomerStore, load_store
from cxpredict.training.registry import log_pyfunc_model
from tests.conftest import run_cli
from tests.serving.conftest import (
    ADMIN_KEY,
    MODEL_NAME,
    SCORE_KEY,
    Company,
    Server,
    keyed_env,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.api


def _client(company: Company) -> mlflow.MlflowClient:
    # The registry resolves `models:/m-...` sources through the global tracking URI: point it at this store.
    mlflow.set_tracking_uri(company.config.tracking_uri)
    mlflow.set_registry_uri(company.config.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=company.config.tracking_uri, registry_uri=company.config.tracking_uri)


def register_copy_of_champion(company: Company) -> str:
    """A new registry version pointing at the champion's artifacts (same model, new version number)."""
    client = _client(company)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    return str(client.create_model_version(MODEL_NAME, champion.source, run_id=champion.run_id).version)


def register_mismatched_model(company: Company) -> str:
    """A version whose bundle needs a feature column the customer store does not have."""
    loaded = load_registered_bundle(company.config.tracking_uri, MODEL_NAME)
    bundle = copy.deepcopy(loaded.bundle)
    bundle.pipeline.specs_ = [*bundle.pipeline.specs_, FeatureSpec("loyalty_tier", CATEGORICAL, ("gold", "silver"))]
    with mlflow.start_run(experiment_id=_client(company).get_run(loaded.run_id).info.experiment_id):
        info = log_pyfunc_model(bundle, MODEL_NAME)
    return str(info.registered_model_version)


def register_tampered_model(company: Company, code: bool = False) -> str:
    """A version with the first champion's run and files, one booster edited after training (a changed leaf
    value), or with `code`, a line added to the model's code (what the Spark UDF would run)."""
    client = _client(company)
    champion = client.get_model_version(MODEL_NAME, "1")
    source = client.get_model_version_download_uri(MODEL_NAME, champion.version)
    folder = company.folder / ("tampered_code" if code else "tampered")
    tampered = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(folder),
                                                        tracking_uri=company.config.tracking_uri))
    if code:
        with open(tampered / MODEL_CODE_FILE, "a") as handle:
            handle.write("\nimport os  # anything at all\n")
    else:
        booster = next((tampered / "artifacts" / BUNDLE_ARTIFACT / "boosters").glob("*churn_booster.txt"))
        text = booster.read_text()
        start = text.index("leaf_value=") + len("leaf_value=")
        booster.write_text(text[:start] + "9" + text[start:])
    return str(client.create_model_version(MODEL_NAME, tampered.as_uri(), run_id=champion.run_id).version)


def register_broken_model(company: Company) -> str:
    """A version whose artifacts hold no bundle."""
    empty = company.folder / "empty_model"
    empty.mkdir(exist_ok=True)
    return str(_client(company).create_model_version(MODEL_NAME, empty.as_uri()).version)


def move_champion(company: Company, version: str) -> None:
    _client(company).set_registered_model_alias(MODEL_NAME, "champion", version)


@pytest.fixture(scope="module")
def reload_company(company_copy_factory) -> Company:  # noqa: ANN001
    return company_copy_factory()


@pytest.fixture(scope="module")
def reload_server(reload_company: Company, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(reload_company.config_path, tmp_path_factory.mktemp("reload") / "server.log", keyed_env())
    yield server
    stop_server(server)


def reload_and_wait(server: Server, timeout: float = 120) -> dict:
    admin = {"X-API-Key": ADMIN_KEY}
    response = httpx.post(f"{server.url}/v1/admin/reload", headers=admin)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/v1/admin/reload", headers=admin).json()
        if body["status"]["state"] != "loading":
            return body
        time.sleep(0.2)
    raise AssertionError("reload did not finish")


def served_version(server: Server) -> str:
    return httpx.get(f"{server.url}/v1/model", headers={"X-API-Key": SCORE_KEY}).json()["version"]


def test_reload_model_unchanged(reload_server: Server) -> None:
    body = reload_and_wait(reload_server)
    assert body["status"]["outcome"] == "unchanged" and body["serving_version"] == "1"


def test_reload_model_swaps_under_traffic(reload_server: Server, reload_company: Company) -> None:
    before = httpx.get(f"{reload_server.url}/v1/alerts", headers={"X-API-Key": SCORE_KEY}).json()
    version = register_copy_of_champion(reload_company)
    move_champion(reload_company, version)
    seen: Counter[tuple[int, str]] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=reload_server.url, headers={"X-API-Key": SCORE_KEY}, timeout=30) as http:
            while not stop.is_set():
                response = http.get("/v1/customers/C0000007/score")
                seen[(response.status_code, response.json().get("model_version", ""))] += 1

    workers = [threading.Thread(target=traffic) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        body = reload_and_wait(reload_server)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert body["status"]["outcome"] == "swapped" and body["serving_version"] == version
    assert {status for status, _ in seen} == {200}  # no request failed during the swap
    assert {v for _, v in seen} <= {"1", version} and seen[(200, version)] > 0
    after = httpx.get(f"{reload_server.url}/v1/alerts", headers={"X-API-Key": SCORE_KEY}).json()
    assert after["model_version"] == version and after["computed_at"] > before["computed_at"]
    assert [a["customer_id"] for a in after["alerts"]] == [a["customer_id"] for a in before["alerts"]]
    metrics = httpx.get(f"{reload_server.url}/metrics").text
    assert f'cxpredict_model_version{{model_name="{MODEL_NAME}"}} {float(version)}' in metrics
    assert 'cxpredict_model_reloads_total{outcome="swapped"}' in metrics


def test_reload_model_refuses_schema_mismatch(reload_server: Server, reload_company: Company) -> None:
    serving = served_version(reload_server)
    move_champion(reload_company, register_mismatched_model(reload_company))
    body = reload_and_wait(reload_server)
    assert body["status"]["outcome"] == "refused" and "loyalty_tier" in body["status"]["error"]
    assert body["serving_version"] == serving == served_version(reload_server)
    response = httpx.get(f"{reload_server.url}/v1/customers/C0000007/score", headers={"X-API-Key": SCORE_KEY})
    assert response.status_code == 200 and response.json()["model_version"] == serving


def test_reload_model_keeps_old_on_load_failure(reload_server: Server, reload_company: Company) -> None:
    serving = served_version(reload_server)
    move_champion(reload_company, register_broken_model(reload_company))
    body = reload_and_wait(reload_server)
    assert body["status"]["outcome"] == "failed" and body["serving_version"] == serving
    assert httpx.get(f"{reload_server.url}/readyz").json()["model_version"] == serving
    assert 'outcome="failed"' in httpx.get(f"{reload_server.url}/metrics").text


def test_reload_model_refuses_tampered_files(reload_server: Server, reload_company: Company, tmp_path: Path) -> None:
    """A booster changed after training is refused by the API (old model serves) and by the CLI (one line, exit 2)."""
    serving = served_version(reload_server)
    tampered = register_tampered_model(reload_company)
    with pytest.raises(BundleIntegrityError, match="churn_booster.txt has SHA-256"):
        load_registered_bundle(reload_company.config.tracking_uri, MODEL_NAME, version=tampered)
    done = run_cli("score", "--config", str(reload_company.config_path), "--out", str(tmp_path / "s.parquet"),
                   "--model-version", tampered, cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "s.parquet").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {MODEL_NAME} version {tampered}, bundle/: ")
    assert "churn_booster.txt has SHA-256" in lines[0] and "refused" in lines[0] and "Traceback" not in done.stderr
    move_champion(reload_company, tampered)
    body = reload_and_wait(reload_server)
    assert body["status"]["outcome"] == "refused" and "churn_booster.txt" in body["status"]["error"]
    assert body["serving_version"] == serving == served_version(reload_server)
    ready = httpx.get(f"{reload_server.url}/readyz").json()
    assert ready["model_version"] == serving


def test_spark_model_folder_refuses_changed_code(reload_company: Company, tmp_path: Path) -> None:
    """The Spark engine hands MLflow the model folder, whose code MLflow runs: it is checked first."""
    original = load_registered_bundle(reload_company.config.tracking_uri, MODEL_NAME, version="1")
    folder = download_checked_model(reload_company.config.tracking_uri, original, tmp_path / "good")
    assert (folder / "MLmodel").is_file() and (folder / MODEL_CODE_FILE).is_file()
    tampered = dataclasses.replace(original, version=register_tampered_model(reload_company, code=True))
    load_registered_bundle(reload_company.config.tracking_uri, MODEL_NAME, version=tampered.version)  # data intact
    with pytest.raises(BundleIntegrityError, match=rf"version {tampered.version}: its code .* refused"):
        download_checked_model(reload_company.config.tracking_uri, tampered, tmp_path / "bad")


def test_poll_model_follows_alias_and_skips_failed_version(company_copy_factory) -> None:  # noqa: ANN001
    company = company_copy_factory()
    store = CustomerStore(default_store_url(company.config), "customers", "customer_id")
    manager = ModelManager(company.config, store, alerts_pool=50)
    assert manager.reload().outcome == "swapped" and manager.current is not None
    old = manager.current
    assert manager.poll_once() is False  # alias has not moved
    move_champion(company, register_copy_of_champion(company))
    assert manager.poll_once() is True
    manager.wait(60)
    assert manager.current is not old and manager.current.version == "2"
    assert old.predict_records([{"tenure_months": 3}])["churn_probability"].shape == (1,)  # in-flight holders work
    move_champion(company, register_broken_model(company))
    assert manager.poll_once() is True
    manager.wait(60)
    assert manager.status.outcome == "failed" and manager.current.version == "2"
    assert manager.poll_once() is False  # the failed version is not retried until the alias moves again
    store.close()


def test_reload_model_refused_when_store_lacks_feature(company: Company, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    dataset = copy.copy(company.dataset)
    dataset.customers = company.dataset.customers.drop(columns=["age"])
    load_store(company.config, dataset, url)
    store = CustomerStore(url, "customers", "customer_id")
    manager = ModelManager(company.config, store)
    status = manager.reload()
    assert status.outcome == "refused" and "'age'" in (status.error or "")
    assert manager.current is None
    store.close()
