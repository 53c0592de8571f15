"""The MLflow pyfunc wrapper around a ScoringBundle (what `mlflow models serve` and Spark UDFs run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from cxpredict.models.bundle import load_bundle
from cxpredict.models.registry import BUNDLE_ARTIFACT


class CxPyfuncModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a ScoringBundle (used by `mlflow models serve` and Spark UDFs)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))
        self.scorers: dict[Any, Any] = {}  # one CustomerScorer per options: explainer tables built once

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """The predictions; with params `uncertainty`/`level`/`explain`/`explain_targets`, the full
        score table of `models.scoring` (what `cxpredict score` writes, less the survey columns)."""
        from cxpredict.models.scoring import CustomerScorer, options_from_params

        options = options_from_params(params)
        if options is None:
            return self.bundle.predict(model_input)
        if options not in self.scorers:
            self.scorers[options] = CustomerScorer(self.bundle, options)
        return self.scorers[options].score(model_input)
