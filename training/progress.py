"""The training progress display: one rich bar per model, advanced by every Optuna trial.

The display is a callback passed down to the searches (no global state), and it is off when
the output is not a terminal, so logs and captured output stay free of control characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cxpredict.training.tune import ProgressEvent, TrainingProgress


@contextmanager
def training_progress(console: Console | None = None) -> Iterator[TrainingProgress | None]:
    """A progress callback drawing per-model trial bars, or None when the console is not a terminal.

    Args:
        console: where to draw (default: standard output).
    Yields:
        The callback to pass to `train` / `tune` (None off a terminal: nothing is drawn).
    """
    console = console or Console()
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {}
        totals: dict[str, int] = {}

        def on_event(event: ProgressEvent) -> None:
            if event.stage == "start":
                totals[event.model] = max(event.trials, 1)
                tasks[event.model] = bars.add_task(event.model, total=totals[event.model], note="tuning")
                return
            task = tasks.get(event.model)
            if task is None:
                return
            if event.stage == "trial":
                last = "last trial pruned" if event.state == "pruned" else f"last trial loss {event.value:.4f}"
                bars.update(task, completed=min(event.trial, event.trials), note=last)
            else:
                best = "" if event.value is None else f", best loss {event.value:.4f}"
                bars.update(task, completed=totals[event.model], note=f"fitted{best}")

        yield on_event
