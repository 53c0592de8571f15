"""The MLflow pyfunc wrapper around a ScoringBundle (what `mlflow models serve` and Spark UDFs run).

Logged as MLflow "models from code" (training/registry.py): this file itself is the model's code,
so nothing is cloudpickled; MLflow executes it under a module name of its own and takes the
model given to `mlflow.models.set_model` below. Imported as `cxpredict.models.pyfunc` it only
defines the class. The bundle it loads is data files checked against their manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from cxpredict.models.bundle import load_bundle
from cxpredict.models.registry import BUNDLE_ARTIFACT, BUNDLE_SHA256_CONFIG


class CxPyfuncModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a ScoringBundle (used by `mlflow models serve` and Spark UDFs)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Read the bundle folder; a file that differs from the manifest logged with the model is refused."""
        expected = (context.model_config or {}).get(BUNDLE_SHA256_CONFIG)
        self.bundle = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]), expected_sha256=expected)
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


PYFUNC_CODE = Path(__file__)  # the file logged as the model's code
if __name__ != "cxpredict.models.pyfunc":  # executed by MLflow as the logged model's code
    mlflow.models.set_model(CxPyfuncModel())
