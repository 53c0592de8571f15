"""The per-customer score table every engine writes: predictions, uncertainty and top-k drivers.

Batch scoring of the config's customers, streamed Parquet scoring and the Spark UDF (through the
pyfunc's params) all build their rows here, so the three give the same columns and values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.types.schema import ParamSchema, ParamSpec

from cxpredict.models.bundle import ScoringBundle, band_column, uncertainty_arrays, uncertainty_columns
from cxpredict.models.explain import DriverExplainer, ExplainError, default_targets, resolve_targets, top_drivers
from cxpredict.models.problems import bundle_problem_columns

EXPLAIN_CHUNK_ROWS = 50_000  # explanations hold rows × features × targets floats: explain in slices


@dataclass(frozen=True)
class ScoringOptions:
    """What goes into a score table beyond the predictions.

    Attributes:
        uncertainty: add the prediction set, expected-score interval, low-support flag and
            response propensity (needs a conformal calibration in the bundle).
        level: nominal coverage of sets and intervals (None: the calibration's, `trust.level`).
        explain: top-k SHAP drivers per customer and target (0: none).
        explain_targets: targets to explain (empty: bottom band, expected score, churn).
    """

    uncertainty: bool = True
    level: float | None = None
    explain: int = 0
    explain_targets: tuple[str, ...] = ()

    @classmethod
    def requested(cls, level: float | None, explain: int, explain_targets: list[str] | None) -> ScoringOptions:
        """Options as the command line and batch scoring ask for them: naming targets alone explains 3."""
        return cls(level=level, explain=explain or (3 if explain_targets else 0),
                   explain_targets=tuple(explain_targets or ()))

    def describe(self) -> dict[str, object]:
        """The options as plain values (part of a streamed job's identity)."""
        return {"uncertainty": self.uncertainty, "level": self.level, "explain": self.explain,
                "explain_targets": list(self.explain_targets)}


class CustomerScorer:
    """Turns encoded customer rows into score tables; explainer tables are built once and reused.

    Args:
        bundle: the trained bundle.
        options: what to add beyond the predictions.
        threads: LightGBM and TreeSHAP threads.
    """

    def __init__(self, bundle: ScoringBundle, options: ScoringOptions | None = None, threads: int | None = None):
        self.bundle = bundle
        self.options = options or ScoringOptions()
        self.threads = threads
        if self.options.explain < 0:
            raise ExplainError(f"explain must be 0 (off) or a number of drivers, got {self.options.explain}")
        if self.options.level is not None and not 0 < self.options.level < 1:
            raise ExplainError(f"level must be between 0 and 1, got {self.options.level}")
        self.explainer = DriverExplainer(bundle, threads) if self.options.explain else None
        self.targets = (
            resolve_targets(bundle, list(self.options.explain_targets) or default_targets(bundle))
            if self.options.explain else []
        )

    def score_matrix(
        self, ids: np.ndarray | pd.Series, X: np.ndarray, model_version: str | None = None
    ) -> pd.DataFrame:
        """One row per encoded row: id, predictions, uncertainty, model version, drivers.

        Args:
            ids: the customers' ids as text, aligned with `X`.
            X: `bundle.pipeline.transform(customers)`.
            model_version: written as a column (before the driver columns) when given.
        Returns:
            The score table with a fresh RangeIndex.
        """
        b = self.bundle
        if len(X) == 0:  # boosters refuse empty input; score one blank row for the columns and types
            blank = np.full((1, X.shape[1]), np.nan)
            return self.score_matrix(np.array([""], dtype=object), blank, model_version).iloc[:0]
        columns: dict[str, object] = {b.id_column: np.asarray(ids, dtype=object)}
        predictions = b.predict_matrix(X, self.threads)
        columns.update(predictions)
        columns.update(bundle_problem_columns(b, predictions))
        if self.options.uncertainty:
            band_probs = np.column_stack([predictions[band_column(name)] for name in b.band_names])
            arrays = uncertainty_arrays(b, X, band_probs, predictions["expected_score"], self.options.level,
                                        self.threads)
            if arrays is not None:
                columns.update(uncertainty_columns(b, arrays))
        if model_version is not None:
            columns["model_version"] = np.full(len(X), model_version, dtype=object)
        frame = pd.DataFrame(columns)
        if self.explainer is None:
            return frame
        return pd.concat([frame, self.top_drivers(X)], axis=1)

    def top_drivers(self, X: np.ndarray) -> pd.DataFrame:
        """Top-k driver columns (`driver{i}_{target}_feature|value|contribution`) for encoded rows."""
        assert self.explainer is not None
        parts = []
        for start in range(0, len(X), EXPLAIN_CHUNK_ROWS):
            explained = self.explainer.explain_matrix(X[start:start + EXPLAIN_CHUNK_ROWS], self.targets)
            parts.append(pd.concat(
                [top_drivers(explained[t.name], self.options.explain, self.bundle) for t in self.targets], axis=1
            ))
        return pd.concat(parts, ignore_index=True)

    def score(self, customers: pd.DataFrame, model_version: str | None = None) -> pd.DataFrame:
        """`score_matrix` on customer rows as loaded (ids as text); the result keeps their index."""
        X = self.bundle.pipeline.transform(customers)
        ids = customers[self.bundle.id_column].astype(str).to_numpy()
        return self.score_matrix(ids, X, model_version).set_axis(customers.index)


# Params of the logged pyfunc (its signature declares them), so `mlflow models serve` callers and
# Spark's UDF can ask for the same table. The defaults give the plain predictions, as before.
PYFUNC_PARAMS: dict[str, object] = {"uncertainty": False, "level": 0.0, "explain": 0, "explain_targets": ""}


def pyfunc_param_schema() -> ParamSchema:
    """The params part of the model signature."""
    dtypes = {bool: "boolean", float: "double", int: "long", str: "string"}
    return ParamSchema([ParamSpec(name, dtypes[type(default)], default) for name, default in PYFUNC_PARAMS.items()])


def options_from_params(params: dict[str, object] | None) -> ScoringOptions | None:
    """Scoring options from pyfunc params; None when they ask for the plain predictions only."""
    merged = {**PYFUNC_PARAMS, **(params or {})}
    uncertainty, explain = bool(merged["uncertainty"]), int(merged["explain"])  # type: ignore[call-overload]
    if not uncertainty and not explain:
        return None
    level = float(merged["level"])  # type: ignore[arg-type]
    targets = tuple(t.strip() for t in str(merged["explain_targets"]).split(",") if t.strip())
    return ScoringOptions(uncertainty=uncertainty, level=level if level > 0 else None, explain=explain,
                          explain_targets=targets)


def params_from_options(options: ScoringOptions) -> dict[str, object]:
    """The pyfunc params that ask the logged model for `options`' table."""
    return {"uncertainty": options.uncertainty, "level": options.level or 0.0, "explain": options.explain,
            "explain_targets": ",".join(options.explain_targets)}
