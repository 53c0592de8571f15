"""Compiled trees (models/compiled.py): equal to the booster, cached, verified, with fallbacks.

Tiny boosters (a few trees) with categorical splits, so each real gcc compile takes seconds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from cxpredict.models import compiled
from cxpredict.models.estimators import predict_raw
from cxpredict.models.treeshap import TreeShap

pytestmark = [pytest.mark.model]


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 3] = rng.integers(0, 12, n)  # categorical: splits on sets of levels
    X[rng.random(n) < 0.1, 1] = np.nan  # missing values take the default branch
    y = X[:, 0] + np.isin(X[:, 3], [1, 4, 7]) * 1.5 + np.nan_to_num(X[:, 1]) * 0.5
    return X, y


def _booster(task: str = "multiclass", trees: int = 6) -> tuple[lgb.Booster, np.ndarray]:
    X, y = _data()
    params = {"verbosity": -1, "num_leaves": 7, "min_data_per_group": 5, "cat_smooth": 1, "seed": 1,
              "deterministic": True, "num_threads": 1}
    if task == "multiclass":
        params |= {"objective": "multiclass", "num_class": 3}
        label = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    else:
        params |= {"objective": "binary"}
        label = (y > np.median(y)).astype(int)
    dataset = lgb.Dataset(X, label=label, categorical_feature=[3], params={"verbosity": -1})
    booster = lgb.train(params, dataset, num_boost_round=trees)
    return booster, X


def _uses_categorical_split(booster: lgb.Booster) -> bool:
    return "decision_type=" in booster.model_to_string() and any(
        n.get("decision_type") == "==" for t in booster.dump_model()["tree_info"]
        for n in _nodes(t["tree_structure"]))


def _nodes(node: dict) -> list[dict]:
    if "split_index" not in node:
        return []
    return [node, *_nodes(node["left_child"]), *_nodes(node["right_child"])]


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_compiled_equals_booster_with_categorical_splits(task: str, tmp_path: Path) -> None:
    booster, X = _booster(task)
    assert _uses_categorical_split(booster)
    model = compiled.compile_booster(booster, tmp_path, X)
    assert model is not None and model.compile_seconds is not None
    expected = booster.predict(X, raw_score=True)
    got = model.predict(X, 2)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-9


def test_cache_hit_second_time_and_tampered_library_refused(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    booster, X = _booster("binary", trees=4)
    first = compiled.compile_booster(booster, tmp_path, X)
    assert first is not None
    folder = tmp_path / compiled.cache_key(booster.model_to_string())
    mtime = (folder / "model.so").stat().st_mtime_ns
    second = compiled.compile_booster(booster, tmp_path, X)
    assert second is not None and second.compile_seconds is None  # loaded, not recompiled
    assert (folder / "model.so").stat().st_mtime_ns == mtime
    assert json.loads((folder / "model.json").read_text())["sha256"]

    with (folder / "model.so").open("ab") as f:  # a modified library must never be loaded
        f.write(b"\0tampered")
    with caplog.at_level(logging.WARNING, logger="cxpredict.models.compiled"):
        assert compiled.load_cached(booster, tmp_path) is None
    assert "SHA-256" in caplog.text and "refused" in caplog.text


def test_predict_raw_goes_through_compiled_and_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("CXPREDICT_COMPILE", raising=False)
    booster, X = _booster("binary", trees=4)
    try:
        compiled.configure(True, tmp_path / "cache", min_rows=1000, background=False)
        small = predict_raw(booster, X[:10])  # below min_rows: the booster, nothing compiled
        assert not (tmp_path / "cache").exists()
        np.testing.assert_array_equal(small, booster.predict(X[:10], raw_score=True))
        out = predict_raw(booster, X)
        assert getattr(booster, compiled._ATTR).model is not None  # the compiled library served it
        assert np.max(np.abs(out - booster.predict(X, raw_score=True))) <= 1e-9

        # No compiler on PATH: a warning, and the booster's own predictions.
        other, _ = _booster("binary", trees=3)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with caplog.at_level(logging.WARNING, logger="cxpredict.models.compiled"):
            fallback = predict_raw(other, X)
        assert "gcc not found" in caplog.text
        assert getattr(other, compiled._ATTR).failed
        np.testing.assert_array_equal(fallback, other.predict(X, raw_score=True))
    finally:
        compiled.configure(False, None)


def test_env_turns_compilation_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXPREDICT_COMPILE", "0")
    try:
        assert not compiled.configure(True, tmp_path).enabled
    finally:
        compiled.configure(False, None)


def test_shap_sums_to_compiled_raw_score(tmp_path: Path) -> None:
    booster, X = _booster("multiclass")
    model = compiled.compile_booster(booster, tmp_path, X)
    assert model is not None
    contributions = TreeShap().fit(booster).shap_values(X[:500])
    raw = model.predict(X[:500], 1).reshape(500, -1)
    assert np.max(np.abs(contributions.sum(axis=2) - raw)) <= 1e-9


def test_config_keys_and_no_compile(small_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXPREDICT_COMPILE", raising=False)
    try:
        assert small_config.scoring.compile and small_config.scoring.compile_cache is None
        settings = compiled.configure_from(small_config)
        assert settings.enabled and settings.cache_dir == small_config.base_dir / compiled.DEFAULT_CACHE
        assert not compiled.configure_from(small_config, enabled=False).enabled  # score --no-compile
        scoring = small_config.scoring.model_copy(update={"compile": False, "compile_cache": "cache/trees"})
        cfg = small_config.model_copy(update={"scoring": scoring})
        settings = compiled.configure_from(cfg)
        assert not settings.enabled and settings.cache_dir == small_config.base_dir / "cache" / "trees"
    finally:
        compiled.configure(False, None)
