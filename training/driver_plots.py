"""Driver plots as PNG files, drawn headless (matplotlib's Agg backend, no display needed).

Per target: a bar chart of mean |SHAP| with 95 % intervals (the weighted table, so it agrees
with the numbers), a shap beeswarm of the sampled customers, dependence plots of the top drivers,
and, with a segment column, a segment-comparison chart.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxpredict.features.build import CATEGORICAL, DATE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cxpredict.models.explain import Explanation
    from cxpredict.training.drivers import DriversResult

DPI = 110


def _pyplot() -> ModuleType:
    """pyplot on the Agg backend: plots render without a display, in tests and on servers."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_bar(table: pd.DataFrame, title: str, path: Path, top: int = 12) -> Path:
    """Mean |SHAP| per feature with a 95 % interval from the sampling error."""
    from cxpredict.training.drivers import Z_95

    plt = _pyplot()
    rows = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(rows) + 1.4))
    ax.barh(rows["feature"], rows["mean_abs_shap"], xerr=Z_95 * rows["se_mean_abs_shap"], color="#1E88E5",
            ecolor="#333333", capsize=3)
    ax.set_xlabel(f"mean |SHAP| ({rows['space'].iloc[0] if len(rows) else ''})")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _numeric_data(explanation: Explanation, rows: np.ndarray) -> np.ndarray:
    """Feature values for colouring: categorical codes have no order, so they are left grey (NaN)."""
    data = explanation.matrix[rows].astype(float).copy()
    for j, kind in enumerate(explanation.kinds):
        if kind == CATEGORICAL:
            data[:, j] = np.nan
    return data


def plot_beeswarm(explanation: Explanation, rows: np.ndarray, title: str, path: Path, top: int = 12) -> Path:
    """shap's beeswarm of the given rows (categorical columns in grey: their codes are not ordered)."""
    import shap

    plt = _pyplot()
    values = shap.Explanation(
        values=explanation.values[rows], base_values=np.full(len(rows), explanation.base),
        data=_numeric_data(explanation, rows), feature_names=list(explanation.feature_names),
    )
    fig = plt.figure()
    with warnings.catch_warnings():
        # shap takes percentiles of each column's values for its colour scale; the grey (all-NaN)
        # categorical columns make numpy warn once per column, which tells the user nothing.
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        shap.plots.beeswarm(values, max_display=top, show=False, plot_size=(8.0, 0.4 * top + 1.5))
    fig = plt.gcf()
    fig.axes[0].set_title(title, fontsize=11)
    fig.axes[0].set_xlabel(f"SHAP value ({explanation.target.space})")
    return _save(fig, path)


def plot_dependence(explanation: Explanation, feature: str, rows: np.ndarray, categories: tuple[str, ...],
                    path: Path) -> Path:
    """Contribution against the feature's value: shap's scatter for numbers, a box per category otherwise."""
    import shap

    plt = _pyplot()
    j = explanation.feature_names.index(feature)
    kind = explanation.kinds[j]
    x = explanation.matrix[rows, j]
    y = explanation.values[rows, j]
    title = f"{explanation.target.label}: {feature}"
    if kind == CATEGORICAL:
        fig, ax = plt.subplots(figsize=(7, 4))
        codes = np.where(np.isfinite(x), x, -1).astype(int)
        present = [c for c in np.unique(codes)]
        labels = [categories[c] if 0 <= c < len(categories) else "missing" for c in present]
        ax.boxplot([y[codes == c] for c in present], tick_labels=labels, showfliers=False)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_ylabel(f"SHAP value ({explanation.target.space})")
        ax.set_xlabel(feature)
        ax.tick_params(axis="x", rotation=30)
        ax.set_title(title, fontsize=11)
        return _save(fig, path)
    if kind == DATE:
        # Dates are days since 1970 inside the model; show them as calendar dates.
        fig, ax = plt.subplots(figsize=(7, 4))
        ok = np.isfinite(x)
        ax.scatter(np.floor(x[ok]).astype(np.int64).astype("datetime64[D]"), y[ok], s=8, alpha=0.6, color="#1E88E5")
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xlabel(feature)
        ax.set_ylabel(f"SHAP value ({explanation.target.space})")
        ax.set_title(title, fontsize=11)
        fig.autofmt_xdate()
        return _save(fig, path)
    values = shap.Explanation(values=y, base_values=np.full(len(y), explanation.base), data=x,
                              feature_names=feature)
    fig, ax = plt.subplots(figsize=(7, 4))
    shap.plots.scatter(values, ax=ax, show=False, hist=True, title=title,
                       ylabel=f"SHAP value ({explanation.target.space})")
    return _save(fig, path)


def plot_segments(segment_table: pd.DataFrame, target: str, label: str, path: Path, top: int = 8) -> Path:
    """Share of each top driver per segment, side by side; highlighted features marked with ★."""
    plt = _pyplot()
    table = segment_table[segment_table["target"] == target]
    best = table.groupby("feature")["rank"].min().sort_values(kind="stable")
    features = list(best.index[:top])
    segments = sorted(table["segment"].unique())
    highlighted = set(table.loc[table["highlight"], "feature"])
    width = 0.8 / max(len(segments), 1)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(features) * max(1, len(segments) / 2) + 1.6))
    positions = np.arange(len(features))
    for i, segment in enumerate(segments):
        rows = table[table["segment"] == segment].set_index("feature").reindex(features)
        ax.barh(positions + i * width, rows["share"].fillna(0).to_numpy(), height=width, label=str(segment))
    ax.set_yticks(positions + width * (len(segments) - 1) / 2)
    ax.set_yticklabels([f"★ {f}" if f in highlighted else f for f in features])
    ax.invert_yaxis()
    ax.set_xlabel("share of total mean |SHAP| within the segment")
    ax.set_title(f"{label}: drivers by segment (★ rank differs most)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_drivers(result: DriversResult, out_dir: Path) -> dict[str, Path]:
    """Every plot of a driver analysis.

    Args:
        result: from `compute_drivers`.
        out_dir: the plots folder.
    Returns:
        Name → path: `bar_<target>`, `beeswarm_<target>`, `dependence_<target>_<feature>`, `segments_<target>`.
    """
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    n = len(result.sample.positions)
    rng = np.random.default_rng(result.sample.seed)
    # The beeswarm shows individual customers; a random subset keeps it readable and fast.
    rows = np.sort(rng.choice(n, size=min(n, 2_000), replace=False))
    for target in result.targets:
        explanation = result.explanations[target.name]
        table = result.global_table[result.global_table["target"] == target.name]
        slug = _slug(target.name)
        files[f"bar_{slug}"] = plot_bar(table, f"{target.label}: top drivers (mean |SHAP|, 95 % interval)",
                                        out_dir / f"bar_{slug}.png")
        files[f"beeswarm_{slug}"] = plot_beeswarm(explanation, rows, f"{target.label}: SHAP per customer",
                                                  out_dir / f"beeswarm_{slug}.png")
        for feature in table["feature"].head(3):
            key = f"dependence_{slug}_{_slug(feature)}"
            files[key] = plot_dependence(explanation, feature, rows, result.categories.get(feature, ()),
                                         out_dir / f"{key}.png")
        if result.segment_table is not None:
            files[f"segments_{slug}"] = plot_segments(result.segment_table, target.name, target.label,
                                                      out_dir / f"segments_{slug}.png")
    return files
