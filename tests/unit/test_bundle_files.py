"""The bundle as data files: every field round-trips, a changed file is refused, and reading runs no code."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import cxpredict.models.bundle as bundle_module
from cxpredict.features.build import FeaturePipeline
from cxpredict.models.bundle import ScoringBundle, load_bundle, save_bundle
from cxpredict.models.bundle_files import (
    INLINE_ARRAY_MAX,
    MANIFEST_FILE,
    TREE_FILE,
    BundleError,
    BundleIntegrityError,
    check_bundle_files,
    sha256_file,
)
from cxpredict.models.conformal import ConformalCalibration
from cxpredict.models.drift import DriftReference
from cxpredict.models.estimators import BINARY, MULTICLASS, REGRESSION, base_params, fit_booster
from cxpredict.models.uplift import TLearner, UpliftResult

pytestmark = pytest.mark.unit

N = 600


def _customers(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [f"C{i:04d}" for i in range(N)],
        "plan": rng.choice(["basic", "plus", "max"], N),
        "tenure_months": rng.integers(0, 72, N),
        "monthly_charge": rng.normal(60, 15, N).round(2),
        "paperless": rng.choice(["Yes", "No"], N),
        "signup_date": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, N), unit="D"),
    })


def small_bundle(seed: int = 0) -> tuple[ScoringBundle, pd.DataFrame]:
    """A bundle with every kind of field filled: boosters, uplift learner, conformal, drift, OOF table, metadata."""
    rng = np.random.default_rng(seed)
    customers = _customers(rng)
    pipeline = FeaturePipeline("customer_id").fit(customers)
    X = pipeline.transform(customers)
    cats = pipeline.categorical_indices_
    bands = rng.integers(0, 3, N)

    def booster(task: str, y: np.ndarray, num_class: int = 1) -> lgb.Booster:
        return fit_booster(X, y, base_params(task, num_class, seed, 1), cats, 8)

    treated = rng.integers(0, 2, N)
    churned = rng.integers(0, 2, N)
    learner = TLearner(cats, seed, 1, 5).fit(X, treated, churned)
    uplift = UpliftResult("discount", "T", learner, int(treated.sum()), int(N - treated.sum()), 0.3, 0.35, -0.05,
                          0.02, -0.09, -0.01, 0.01, 0.0, 0.5, 0.49, {"T": 0.01, "X": -0.002}, heterogeneity_se=np.inf)
    conformal = ConformalCalibration.from_respondents(
        rng.dirichlet(np.ones(3), N), bands, rng.uniform(0, 10, N), rng.integers(0, 11, N), rng.uniform(0.05, 0.9, N),
        0.2)
    oof = pd.DataFrame({"customer_id": customers["customer_id"], "p_detractor": rng.uniform(size=N),
                        "response_propensity": rng.uniform(size=N)})
    bundle = ScoringBundle(
        name="unit", id_column="customer_id", pipeline=pipeline, levels=list(range(11)),
        bands={"detractor": (0, 6), "passive": (7, 8), "promoter": (9, 10)}, top_band="promoter",
        bottom_band="detractor", score_booster=booster(MULTICLASS, bands, 3),
        expected_score_booster=booster(REGRESSION, rng.uniform(0, 10, N)), score_temperature=1.25,
        cause_boosters={"price": booster(BINARY, rng.integers(0, 2, N))},
        driver_boosters={"rating_network": booster(REGRESSION, rng.uniform(1, 5, N))},
        churn_booster=booster(BINARY, churned), churn_uses_experience=False,
        propensity_booster=booster(BINARY, rng.integers(0, 2, N)),
        metadata={"metrics": {"test_auc": np.float64(0.71), "n": np.int64(N), "gap": float("nan")},
                  "notes": ["a note", "NaN", "Infinity"], "shape": (3, 4), "by_level": {7: "passive"},
                  "flag": np.bool_(True), "bound": -np.inf},
        uplift={"discount": uplift}, conformal=conformal, respondent_oof=oof,
        drift_reference=DriftReference.fit(pipeline, X),
    )
    return bundle, customers


def assert_same(a: Any, b: Any, where: str = "bundle") -> None:
    """Deep equality over everything a bundle holds (NaN equals NaN; boosters by their model text)."""
    if isinstance(a, lgb.Booster):
        assert isinstance(b, lgb.Booster), where
        assert a.model_to_string() == b.model_to_string(), where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=where)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}.{i}")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        assert_same(vars(a), vars(b), where)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b and type(a) is type(b) or (isinstance(a, np.generic) and a.item() == b), where


def test_bundle_round_trip_keeps_every_field(tmp_path: Path) -> None:
    bundle, customers = small_bundle()
    files = save_bundle(bundle, tmp_path / "bundle")
    restored = load_bundle(files.folder, expected_sha256=files.sha256)
    assert {f.name for f in dataclasses.fields(ScoringBundle)} == {f.name for f in dataclasses.fields(restored)}
    assert_same(bundle, restored)
    assert isinstance(restored.uplift["discount"].model, TLearner)
    pd.testing.assert_frame_equal(restored.predict(customers), bundle.predict(customers), check_exact=True)
    X = bundle.pipeline.transform(customers)
    effects = [b.uplift["discount"].predict_effect(X) for b in (restored, bundle)]
    np.testing.assert_array_equal(*effects)


def test_bundle_folder_holds_only_data_files(tmp_path: Path) -> None:
    bundle, _ = small_bundle()
    folder = save_bundle(bundle, tmp_path / "bundle").folder
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert {Path(f).suffix for f in files} == {".json", ".txt", ".parquet"}
    assert TREE_FILE in files and MANIFEST_FILE in files
    assert sum(f.startswith("boosters/") for f in files) == 8  # 6 of the bundle's models + the T-learner's 2
    assert any(f.startswith("arrays/") for f in files) and len(bundle.conformal.band_scores) > INLINE_ARRAY_MAX
    tree = json.loads((folder / TREE_FILE).read_text())  # plain JSON: no NaN or Infinity tokens
    assert tree["root"]["$dataclass"] == "cxpredict.models.bundle.ScoringBundle"
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert set(manifest["sha256"]) == set(files) - {MANIFEST_FILE}
    assert all(sha256_file(folder / f) == digest for f, digest in manifest["sha256"].items())


def test_field_added_to_a_bundle_dataclass_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialisation goes field by field: a field added later needs no change to the file format."""
    base, _ = small_bundle()
    extended = dataclasses.make_dataclass("ExtendedBundle", [
        ("holdout", pd.DataFrame | None, dataclasses.field(default=None)),
        ("weights", dict, dataclasses.field(default_factory=dict)),
    ], bases=(ScoringBundle,))
    extended.__module__ = bundle_module.__name__
    monkeypatch.setattr(bundle_module, "ExtendedBundle", extended, raising=False)
    value = extended(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                     holdout=pd.DataFrame({"x": [1.5, np.nan]}, index=["a", "b"]),
                     weights={"price": np.arange(3.0), "inf": np.array([np.inf, -np.inf, np.nan])})
    files = save_bundle(value, tmp_path / "bundle")
    assert_same(value, load_bundle(files.folder, files.sha256))


def _rewrite(folder: Path, edit: Any) -> str:
    """Edit bundle.json and write a manifest that matches (what someone with write access could do)."""
    tree = json.loads((folder / TREE_FILE).read_text())
    edit(tree["root"])
    (folder / TREE_FILE).write_text(json.dumps(tree))
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["sha256"][TREE_FILE] = sha256_file(folder / TREE_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return sha256_file(folder / MANIFEST_FILE)


def test_bundles_written_before_trust_fields_still_load(tmp_path: Path) -> None:
    """Older bundles lack the newer fields: the dataclass defaults stand in for them."""
    bundle, customers = small_bundle()
    folder = save_bundle(bundle, tmp_path / "bundle").folder

    def drop_trust_fields(root: dict) -> None:
        for name in ("conformal", "respondent_oof", "drift_reference", "uplift"):
            del root["fields"][name]

    restored = load_bundle(folder, _rewrite(folder, drop_trust_fields))
    assert restored.conformal is None and restored.respondent_oof is None and restored.drift_reference is None
    assert restored.uplift == {}
    pd.testing.assert_frame_equal(restored.predict(customers), bundle.predict(customers))


def test_changed_added_or_missing_file_is_refused(tmp_path: Path) -> None:
    bundle, _ = small_bundle()
    files = save_bundle(bundle, tmp_path / "bundle")
    booster = files.folder / "boosters" / "bundle.churn_booster.txt"
    original = booster.read_text()
    booster.write_text(original.replace("leaf_value=", "leaf_value=9", 1))
    with pytest.raises(BundleIntegrityError, match=r"boosters/bundle.churn_booster.txt has SHA-256 .* refused"):
        load_bundle(files.folder, files.sha256)
    booster.write_text(original)
    (files.folder / "boosters" / "extra.txt").write_text("tree")
    with pytest.raises(BundleIntegrityError, match="extra.txt is not listed in the bundle's manifest"):
        check_bundle_files(files.folder)
    (files.folder / "boosters" / "extra.txt").unlink()
    booster.unlink()
    with pytest.raises(BundleIntegrityError, match="bundle.churn_booster.txt is listed .* but missing"):
        check_bundle_files(files.folder)
    booster.write_text(original)
    assert load_bundle(files.folder, files.sha256).churn_booster is not None  # restored: accepted again


def test_manifest_rewritten_to_match_is_refused_against_the_recorded_digest(tmp_path: Path) -> None:
    bundle, _ = small_bundle()
    files = save_bundle(bundle, tmp_path / "bundle")

    def change_temperature(root: dict) -> None:
        root["fields"]["score_temperature"] = 9.0

    forged = _rewrite(files.folder, change_temperature)
    assert load_bundle(files.folder).score_temperature == 9.0  # consistent in itself...
    with pytest.raises(BundleIntegrityError, match=f"{MANIFEST_FILE} has SHA-256 {forged}, not the {files.sha256}"):
        load_bundle(files.folder, files.sha256, label="m version 3")  # ...but not what training recorded


@pytest.mark.parametrize("name", ["os.system", "subprocess.Popen", "builtins.eval", "cxpredict.cli.app"])
def test_bundle_naming_a_class_outside_the_model_packages_is_refused(tmp_path: Path, name: str) -> None:
    bundle, _ = small_bundle()
    folder = save_bundle(bundle, tmp_path / "bundle").folder

    def swap_class(root: dict) -> None:
        root["fields"]["metadata"] = {"$object": name, "attributes": {}}

    digest = _rewrite(folder, swap_class)
    with pytest.raises(BundleError, match="is not one of cxpredict's model classes"):
        load_bundle(folder, digest)


def test_value_of_an_unknown_kind_is_not_written(tmp_path: Path) -> None:
    bundle, _ = small_bundle()
    bundle.metadata["when"] = pd.Timestamp("2026-01-01")
    with pytest.raises(BundleError, match=r"cannot store bundle.metadata.when: a pandas.*Timestamp is not a bundle"):
        save_bundle(bundle, tmp_path / "bundle")


def test_folder_without_manifest_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "bundle.joblib").write_bytes(b"\x80\x04")
    with pytest.raises(BundleError, match="no manifest.json: not a cxpredict bundle folder"):
        load_bundle(tmp_path)
