"""Commands launched by `mlflow run` (MLflow Projects): the launcher's run and cxpredict's own runs.

`mlflow run` opens a run in *its* tracking store (MLFLOW_TRACKING_URI, by default ./mlflow.db
where it was called) and hands it to the entry point through MLFLOW_RUN_ID. cxpredict logs into
the dataset config's store instead, where `score`, serving and the registry find the champion
whichever way training was started. So a command launched by `mlflow run` detaches from the
launcher's run (MLflow would otherwise try to resume that run id in the config's store, and fail),
opens its own run there as always, and the two runs point at each other through tags.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mlflow

from cxpredict.features.secrets import mask_url, mask_urls_in
from cxpredict.models.registry import (
    TAG_PROJECT_RUN,
    TAG_PROJECT_STORE,
    TAG_RUN,
    TAG_STORE,
    tracking_client,
)

# The tag names are the registry's; they are re-exported for the callers that name them with this module.
__all__ = ["TAG_PROJECT_RUN", "TAG_PROJECT_STORE", "TAG_RUN", "TAG_STORE", "ProjectRun", "detach_project_run",
           "link_project_run", "project_run"]

logger = logging.getLogger(__name__)

RUN_ID_ENV = "MLFLOW_RUN_ID"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# Where the launcher's run is remembered once MLFLOW_RUN_ID has been taken out of the environment.
PROJECT_RUN_ENV = "CXPREDICT_PROJECT_RUN_ID"
PROJECT_STORE_ENV = "CXPREDICT_PROJECT_TRACKING_URI"


@dataclass(frozen=True)
class ProjectRun:
    """The run `mlflow run` opened for this process, and the store it lives in."""

    run_id: str
    tracking_uri: str


def project_run() -> ProjectRun | None:
    """The launcher's run when this process was started by `mlflow run`, else None."""
    run_id = os.environ.get(PROJECT_RUN_ENV) or os.environ.get(RUN_ID_ENV)
    if not run_id:
        return None
    return ProjectRun(run_id, os.environ.get(PROJECT_STORE_ENV) or os.environ.get(TRACKING_URI_ENV, ""))


def detach_project_run() -> ProjectRun | None:
    """Take MLFLOW_RUN_ID out of the environment so `mlflow.start_run` opens a new run.

    Returns:
        The launcher's run (remembered for `link_project_run`), or None outside `mlflow run`.
    """
    launcher = project_run()
    if launcher is not None:
        os.environ.pop(RUN_ID_ENV, None)
        os.environ[PROJECT_RUN_ENV] = launcher.run_id
        os.environ[PROJECT_STORE_ENV] = launcher.tracking_uri
    return launcher


def link_project_run(run_id: str, tracking_uri: str) -> ProjectRun | None:
    """Tag cxpredict's run and the launcher's run with each other's id and store.

    The launcher's store may be unreachable from here (a relative SQLite path resolved from
    another folder): that costs the back link only, with a warning, never the command.

    Args:
        run_id: cxpredict's run (training or backtest).
        tracking_uri: the store it lives in (the config's).
    Returns:
        The launcher's run, or None outside `mlflow run`.
    """
    launcher = project_run()
    if launcher is None:
        return None
    own = tracking_client(tracking_uri)
    own.set_tag(run_id, TAG_PROJECT_RUN, launcher.run_id)
    # Tags are read by anyone with the store: the other store's URL without its password.
    own.set_tag(run_id, TAG_PROJECT_STORE, mask_url(launcher.tracking_uri))
    try:
        theirs = mlflow.MlflowClient(tracking_uri=launcher.tracking_uri or None)
        theirs.set_tag(launcher.run_id, TAG_RUN, run_id)
        theirs.set_tag(launcher.run_id, TAG_STORE, mask_url(tracking_uri))
    except Exception as err:  # any store failure (unreachable, no such run) costs the back link only
        logger.warning("could not tag the mlflow run %s in %s: %s", launcher.run_id, mask_url(launcher.tracking_uri),
                       mask_urls_in(str(err)))
    return launcher
