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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from cxpredict.features.build import BOOLEAN, CATEGORICAL, DATE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cxpredict.models.explain import Explanation, Target

DPI = 110
Z_95 = 1.959964  # two-sided 95 % normal quantile: the bars' error whiskers


class DriverAnalysis(Protocol):
    """What the plots read of a driver analysis (training/drivers.py's `DriversResult`).

    A protocol rather than an import: drivers.py calls these plots, so importing it back would
    make the two modules a circle.
    """

    sample: Any
    targets: list[Target]
    explanations: dict[str, Explanation]
    global_table: pd.DataFrame
    segment_table: pd.DataFrame | None
    categories: dict[str, Any]


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
    if kind == BOOLEAN:
        # A 0/1 scatter hides how many customers sit at each value: bars of the mean contribution say it.
        groups = {"no": y[x == 0], "yes": y[x == 1], "missing": y[~np.isfinite(x)]}
        return _plot_groups(groups, title, feature, explanation.target.space, path)
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
    ok = np.isfinite(x)
    values = shap.Explanation(values=y[ok], base_values=np.full(int(ok.sum()), explanation.base), data=x[ok],
                              feature_names=feature)
    fig, ax = plt.subplots(figsize=(7, 4))
    shap.plots.scatter(values, ax=ax, show=False, hist=True, title=title,
                       ylabel=f"SHAP value ({explanation.target.space})")
    if (~ok).any():
        # Missing values have no place on the x axis: their mean contribution is stated, not dropped.
        mean = float(y[~ok].mean())
        ax.axhline(mean, color="#E53935", lw=1.2, ls="--")
        ax.annotate(f"missing ({int((~ok).sum()):,} customers): mean {mean:+.3f}", xy=(0.02, 0.95),
                    xycoords="axes fraction", color="#E53935", fontsize=9, va="top")
    return _save(fig, path)


def _plot_groups(groups: dict[str, np.ndarray], title: str, feature: str, space: str, path: Path) -> Path:
    """Mean contribution per value with a 95 % interval and the count of customers, one bar each."""
    plt = _pyplot()
    groups = {k: v for k, v in groups.items() if len(v)}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    means = [float(v.mean()) for v in groups.values()]
    errors = [1.959964 * float(v.std(ddof=1)) / np.sqrt(len(v)) if len(v) > 1 else 0.0 for v in groups.values()]
    bars = ax.bar(list(groups), means, yerr=errors, capsize=4,
                  color=["#E53935" if m > 0 else "#1E88E5" for m in means])
    for bar, values in zip(bars, groups.values(), strict=True):
        ax.annotate(f"n={len(values):,}", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel(feature)
    ax.set_ylabel(f"mean SHAP value ({space})")
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def plot_key_drivers(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Importance × performance of the rated attributes, with the quadrant lines at their averages."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    x, y = table["performance"].to_numpy(), 100 * table["importance"].to_numpy()
    ax.errorbar(x, y, yerr=[y - 100 * table["importance_low"], 100 * table["importance_high"] - y],
                xerr=[x - table["performance_low"], table["performance_high"] - x], fmt="o", color="#1E88E5",
                ecolor="#90CAF9", capsize=3)
    for xi, yi, name in zip(x, y, table["attribute"], strict=True):
        ax.annotate(str(name), (xi, yi), xytext=(5, 5), textcoords="offset points", fontsize=9)
    ax.axhline(100 / len(table), color="#999999", lw=0.8, ls="--")
    ax.axvline(float(np.mean(x)), color="#999999", lw=0.8, ls="--")
    for text, (hx, hy) in {"fix first": (0.02, 0.97), "maintain": (0.98, 0.97), "lower priority": (0.02, 0.03),
                           "over-invested": (0.98, 0.03)}.items():
        ax.text(hx, hy, text, transform=ax.transAxes, ha="left" if hx < 0.5 else "right",
                va="top" if hy > 0.5 else "bottom", color="#757575", fontsize=9)
    ax.set_xlabel("performance: mean rating (95 % interval)")
    ax.set_ylabel("importance: share of the score's explained variance, % (95 % interval)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
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


def plot_drivers(result: DriverAnalysis, out_dir: Path) -> dict[str, Path]:
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
    if result.key_drivers is not None:
        files["plot_key_drivers"] = plot_key_drivers(result.key_drivers.of_segment(),
                                                "Key drivers: importance × performance (all respondents)",
                                                out_dir / "key_drivers.png")
    return files
