"""notebooks/driver_review.ipynb runs end to end on a small generated company (nbclient)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO_ROOT

# Generates and trains a company inside the kernel, then explains and reports: more than a minute.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NOTEBOOK = REPO_ROOT / "notebooks" / "driver_review.ipynb"


def test_driver_review_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPREDICT_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("CXPREDICT_NOTEBOOK_CUSTOMERS", "3000")
    monkeypatch.setenv("CXPREDICT_NOTEBOOK_TUNE_TRIALS", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # a failing cell raises CellExecutionError, failing the test
    assert (tmp_path / "report.html").stat().st_size > 100_000
    images = sum(1 for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    assert images >= 4
