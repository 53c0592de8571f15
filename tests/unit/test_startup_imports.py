"""Start-up: the CLI module and its callback import only what every command needs (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("mlflow", "sqlalchemy", "shap", "optuna", "matplotlib", "catboost", "pyspark")
CHECK = """
import json, sys
import cxpredict.cli as cli
cli.main(verbose=False, version=False)  # the callback every command runs first
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def test_cli_and_its_callback_import_no_heavy_library() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "CXPREDICT_PROJECT_RUN_ID")}
    done = subprocess.run([sys.executable, "-c", CHECK.format(heavy=HEAVY)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
