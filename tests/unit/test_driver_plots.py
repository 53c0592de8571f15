"""Dependence plots that fit the column: bars for booleans (with missing), missing values stated on numeric plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection

from cxpredict.features.build import BOOLEAN, NUMERIC
from cxpredict.models.explain import Explanation, Target
from cxpredict.training import driver_plots


def _explanation(kind: str, x: np.ndarray) -> Explanation:
    rng = np.random.default_rng(0)
    values = np.column_stack([np.where(x == 1, 0.4, -0.1) + rng.normal(0, 0.01, len(x)), rng.normal(0, 0.1, len(x))])
    return Explanation(target=Target("detractor", "p_detractor", "log-odds", "P(detractor)"), values=values,
                       base=-0.5, output=-0.5 + values.sum(axis=1), feature_names=["app_user", "other"],
                       kinds=[kind, NUMERIC], matrix=np.column_stack([x, rng.normal(size=len(x))]))


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plot functions save (inspected before they are closed)."""
    figures: list = []
    original = driver_plots._save

    def keep(fig, path: Path) -> Path:  # noqa: ANN001
        dots = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]  # scatter, not error bars
        figures.append({"bars": len(fig.axes[0].patches), "points": sum(len(c.get_offsets()) for c in dots),
                        "texts": [t.get_text() for t in fig.axes[0].texts],
                        "ticks": [t.get_text() for t in fig.axes[0].get_xticklabels()]})
        return original(fig, path)

    monkeypatch.setattr(driver_plots, "_save", keep)
    return figures


@pytest.mark.unit
def test_boolean_dependence_is_bars_per_value_with_missing(drawn: list, tmp_path: Path) -> None:
    x = np.array([0.0] * 50 + [1.0] * 30 + [np.nan] * 20)
    path = driver_plots.plot_dependence(_explanation(BOOLEAN, x), "app_user", np.arange(100), (), tmp_path / "b.png")
    assert path.is_file()
    assert drawn[0]["bars"] == 3 and drawn[0]["points"] == 0  # no, yes, missing: bars, not a 0/1 scatter
    assert drawn[0]["ticks"] == ["no", "yes", "missing"]
    assert {"n=50", "n=30", "n=20"} <= set(drawn[0]["texts"])


@pytest.mark.unit
def test_numeric_dependence_states_the_missing_values(drawn: list, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = np.where(rng.random(200) < 0.1, np.nan, rng.normal(size=200))
    driver_plots.plot_dependence(_explanation(NUMERIC, x), "app_user", np.arange(200), (), tmp_path / "n.png")
    missing = int(np.isnan(x).sum())
    assert any(f"missing ({missing:,} customers)" in t for t in drawn[0]["texts"])
