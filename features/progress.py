"""Progress of a long command, reported through a callback the caller passes down (no global state)."""

from __future__ import annotations

from collections.abc import Callable

# step(description, done, total): `done` of `total` steps are finished and `description` says what
# runs now. The CLI passes one that draws a progress bar on a terminal; library callers pass none.
StepProgress = Callable[[str, int, int], None]


def no_progress(description: str, done: int, total: int) -> None:
    """The default: report nothing (tests, notebooks, the API)."""
