"""The `cxpredict` command: parses arguments into the config and calls training/ and serving/."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from functools import wraps
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from cxpredict.features.config import ConfigError, CxConfig, load_config
from cxpredict.features.progress import StepProgress
from cxpredict.features.secrets import mask_url


class OneLineErrors(TyperGroup):
    """A mistyped option or value ends with one `error:` line and exit 2, like every other bad input.

    Click's usage errors are a usage line, a hint and a boxed message; scripts and people read one
    line (`error: cxpredict serve: Invalid value for '--log-level': ...`).
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as err:
            if _is_click_error(err, "Abort"):  # a prompt answered with Ctrl-C / Ctrl-D
                typer.echo("aborted", err=True)
                sys.exit(1)
            if _is_click_error(err, "NoArgsIsHelpError"):  # `cxpredict store`: typer printed the help
                sys.exit(err.exit_code)  # type: ignore[attr-defined]
            if not _is_click_error(err, "ClickException"):
                raise
            ctx = getattr(err, "ctx", None)
            where = f"{ctx.command_path}: " if _is_click_error(err, "UsageError") and ctx is not None else ""
            typer.echo(f"error: {where}{err.format_message()}", err=True)  # type: ignore[attr-defined]
            sys.exit(err.exit_code)  # type: ignore[attr-defined]
        sys.exit(result if isinstance(result, int) else 0)


def _is_click_error(err: BaseException, name: str) -> bool:
    """Whether `err` is click's exception `name`: matched by class name, as newer typer vendors click."""
    return any(cls.__name__ == name for cls in type(err).__mro__)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False,
                  cls=OneLineErrors)
console = Console(stderr=True)
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to cxpredict.yaml")]
ModelVersionOption = Annotated[str | None, typer.Option(help="Registered version (default: champion)")]
# One spelling for the segment column everywhere; the old ones (`--segment`, `--by`) still work, unlisted.
SegmentByOption = Annotated[str | None, typer.Option(
    "--segment-by", help="Customers column to compare segments by (default: 'segment' if present)")]
SegmentAliasOption = Annotated[str | None, typer.Option("--segment", "--by", hidden=True)]
CompareSegmentsOption = Annotated[str | None, typer.Option(
    "--segment-by", help="Customers column to compare segments by (default: none)")]


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


class Engine(StrEnum):
    local = "local"
    spark = "spark"


class Selection(StrEnum):
    random = "random"
    biased = "biased"


class Objective(StrEnum):
    value = "value"
    churn = "churn"
    score = "score"


class SurveyGoal(StrEnum):
    coverage = "coverage"
    precision = "precision"


def _segment_column(segment_by: str | None, alias: str | None) -> str | None:
    """The segment column, from --segment-by or one of its old spellings (not two different ones)."""
    if segment_by is not None and alias is not None and segment_by != alias:
        raise ConfigError(f"--segment-by '{segment_by}' and its old spelling '{alias}' disagree: give one")
    return segment_by if segment_by is not None else alias


@contextmanager
def step_progress(title: str, console: Console | None = None) -> Iterator[StepProgress]:
    """A rich progress bar (stage, steps done, elapsed) on a terminal; nothing at all off one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task(title, total=None)

        def step(description: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {description}", completed=done, total=total)

        yield step


# 0 means "the config's value": MLproject parameters cannot be left out, so `mlflow run` passes 0.
TuneTrialsOption = Annotated[
    int | None, typer.Option(min=0, help="Override training.tune_trials (0: the config's value)")
]


def _user_errors() -> tuple[type[Exception], ...]:
    from cxpredict.features.load import DataError
    from cxpredict.models.bundle_files import BundleError
    from cxpredict.serving.api.store import StoreError

    return (ConfigError, DataError, BundleError, StoreError)


def _database_error(err: Exception) -> str | None:
    """One line for a store or tracking database that cannot be reached or named (None: not such an error).

    A wrong URL, an unknown database, a refused connection or a bad password is the user's to fix, so
    it gets the driver's first line (URLs masked, never the password) instead of a traceback.
    """
    from sqlalchemy import exc

    from cxpredict.features.secrets import mask_urls_in

    if isinstance(err, exc.OperationalError | exc.InterfaceError):
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        return mask_urls_in(f"cannot use the database: {first}")
    if isinstance(err, exc.ArgumentError | exc.NoSuchModuleError):
        return mask_urls_in(f"not a usable database URL: {str(err).splitlines()[0]}")
    return None


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input ends the command with one readable line and exit code 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _user_errors() as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None
        except Exception as err:
            message = _database_error(err)
            if message is None:
                raise
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow is imported later, where a command needs it, and then sets its own loggers to
    # MLFLOW_LOGGING_LEVEL (default INFO), undoing the line above: its INFO lines ("Creating initial
    # MLflow database tables...") would break the one-line error contract on stderr.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _print_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"cxpredict {installed_version('cxpredict')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("cxpredict (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the installed version and exit")] = False,
) -> None:
    """cxpredict: experience scores, causes and churn for every silent customer."""
    _setup_logging(verbose)
    # Under `mlflow run` every command logs its own runs in the config's store (drift runs of
    # `score` included), never by resuming the launcher's run id in a store that lacks it.
    # Only then is training/project.py imported: it imports MLflow (~1-2 s), which most commands
    # outside `mlflow run` never need (the names are RUN_ID_ENV and PROJECT_RUN_ENV there).
    if os.environ.get("MLFLOW_RUN_ID") or os.environ.get("CXPREDICT_PROJECT_RUN_ID"):
        from cxpredict.training.project import detach_project_run

        detach_project_run()
    # MLflow's artifact-download progress bar would break the one-line error contract on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@app.command()
@cli_errors
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the dataset into")],
    customers: Annotated[int, typer.Option(help="Number of customers")] = 100_000,
    survey_rate: Annotated[float, typer.Option(help="Share of customers who answered the survey")] = 0.03,
    seed: Annotated[int, typer.Option(help="Random seed")] = 42,
    name: Annotated[str, typer.Option(help="Dataset name in the config")] = "synthetic",
    texts: Annotated[bool, typer.Option(
        "--texts", help="Also write survey free text (comment), texts.csv and codeframe.yaml (Chinese and English)")]
    = False,
    hidden_trait: Annotated[float | None, typer.Option(
        help="Strength of an unobserved trait behind both answering and satisfaction (log-odds of answering "
             "per SD); churn then follows the score and observed columns only")] = None,
    uninformative_churn: Annotated[bool, typer.Option(
        help="With --hidden-trait: churn says nothing about satisfaction")] = False,
) -> None:
    """Write a synthetic company with known ground truth (truth.parquet) in the contract's format."""
    from cxpredict.features.synthetic import HiddenTrait, generate_company, generate_selected_company, write_company

    if customers < 100 or not 0 < survey_rate < 1:
        raise ConfigError("--customers must be at least 100 and --survey-rate between 0 and 1")
    if hidden_trait is None:
        company = generate_company(customers, survey_rate, seed)
    else:
        trait = HiddenTrait(strength=hidden_trait, **({"churn_per_score_point": 0.0} if uninformative_churn else {}))
        company = generate_selected_company(customers, survey_rate, seed, trait)
    config_path = write_company(company, out, name=name)
    if texts:
        from cxpredict.features.synthetic_text import write_company_texts

        written = write_company_texts(company, out, seed)
        typer.echo(f"wrote {len(written.texts)} texts and {len(written.survey_text)} survey answers")
    typer.echo(f"wrote {len(company.customers)} customers, {len(company.survey)} respondents -> {config_path}")


def _load(config: Path) -> CxConfig:
    return load_config(config)


StudyStorageOption = Annotated[
    str | None, typer.Option(help="Optuna storage URL shared by processes (e.g. postgresql://...)")
]
StudyNameOption = Annotated[
    str | None, typer.Option(help="Prefix of the Optuna study names: resume studies by name (default: by data)")
]


@app.command()
@cli_errors
def train(
    config: ConfigOption,
    tune_trials: TuneTrialsOption = None,
    study_storage: StudyStorageOption = None,
    study_name: StudyNameOption = None,
) -> None:
    """Train every model, log one MLflow run and register the bundle as `champion`."""
    from cxpredict.training.progress import training_progress
    from cxpredict.training.train import train as run_training
    from cxpredict.training.train import training_summary

    cfg = _load(config)
    with training_progress() as progress:
        result = run_training(cfg, tune_trials=tune_trials or None, study_storage=study_storage,
                              study_name=study_name, progress=progress)
    _print_rows("training (held-out figures; every metric is in the MLflow run)", ("model", "figure", "value"),
                [(row.model, row.figure, row.value) for row in training_summary(result)])
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"run {result.run_id}; registered {result.model_name} version {result.model_version} as champion")
    typer.echo(f"tracking store: {mask_url(cfg.tracking_uri)}")


@app.command()
@cli_errors
def tune(
    config: ConfigOption,
    tune_trials: TuneTrialsOption = None,
    study_storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL (default: training.study_storage, else optuna.db beside the config)")] = None,
    study_name: StudyNameOption = None,
) -> None:
    """Run the hyper-parameter searches alone (one MLflow run); run again to resume the studies."""
    from cxpredict.training.progress import training_progress
    from cxpredict.training.train import tune as run_tuning

    cfg = _load(config)
    with training_progress() as progress:
        report = run_tuning(cfg, tune_trials=tune_trials or None, study_storage=study_storage,
                            study_name=study_name, progress=progress)
    _print_rows("tuning (best validation loss per study)", ("model", "trials", "best loss", "study"),
                [(s.model, str(s.n_trials), "" if s.validation_loss is None else f"{s.validation_loss:.4f}",
                  s.study_name or "") for s in report.studies], wrap=3, right=(1, 2))
    typer.echo(f"run {report.run_id}; studies in {mask_url(report.storage)}")
    typer.echo(f"tracking store: {mask_url(cfg.tracking_uri)}")


@app.command()
@cli_errors
def score(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Parquet file to write; with --input, a folder of parts")],
    model_version: ModelVersionOption = None,
    level: Annotated[float | None, typer.Option(help="Coverage of prediction sets (default: trust.level)")] = None,
    explain: Annotated[int, typer.Option(help="Add the top-K SHAP drivers per customer and target")] = 0,
    explain_target: Annotated[list[str] | None, typer.Option(
        help="Target to explain with --explain (repeatable; default: bottom band, expected_score, churn)")] = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", help="Parquet file or folder of customers to stream-score")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per streamed chunk (bounds memory)")] = 200_000,
    engine: Annotated[Engine, typer.Option(help="local (streaming, in process) or spark")] = Engine.local,
    master: Annotated[str, typer.Option(help="Spark master for --engine spark")] = "local[2]",
    threads: Annotated[int | None, typer.Option(help="LightGBM threads (default: training.threads)")] = None,
    survey_columns: Annotated[bool, typer.Option(
        help="With --input: add `surveyed` and the observed score from the config's survey")] = True,
    compile_trees: Annotated[bool, typer.Option(
        "--compile/--no-compile", help="Compiled trees (scoring.compile; models/compiled.py)")] = True,
) -> None:
    """Score customers with the champion model: one row per customer.

    Without --input, scores the config's customers table into one file (with survey columns).
    With --input, streams Parquet in chunks into a folder of parts with a manifest and rejects,
    resuming a killed run; `--engine spark` runs the same models through a Spark UDF. Both give
    the same columns: predictions, prediction set and interval, survey columns, top-k drivers.
    """
    from cxpredict.models.registry import load_champion
    from cxpredict.serving.batch.files import check_drift

    if explain < 0:
        raise ConfigError(f"--explain must be 0 (off) or a number of drivers, got {explain}")
    if level is not None and not 0 < level < 1:
        raise ConfigError(f"--level must be between 0 and 1, got {level}")
    cfg = _load(config)
    from cxpredict.models.compiled import configure_from

    configure_from(cfg, compile_trees)
    if input_path is None:
        if engine is not Engine.local:
            raise ConfigError("--engine spark needs --input (a Parquet file or folder)")
        from cxpredict.features.io import write_parquet_atomic
        from cxpredict.models.registry import load_scoring_inputs
        from cxpredict.serving.batch.files import score_customers

        dataset, loaded = load_scoring_inputs(cfg, model_version)
        scores = score_customers(cfg, loaded, dataset, level, explain=explain, explain_targets=explain_target)
        write_parquet_atomic(scores, out)
        _report_drift(*check_drift(cfg, loaded, dataset.customers), out.with_name(f"{out.stem}.drift.csv"))
        typer.echo(f"scored {len(scores)} customers with {loaded.model_name} v{loaded.version} -> {out}")
        return
    if out.suffix == ".parquet":
        raise ConfigError(f"--out {out}: with --input the output is a folder of parts; give a folder name")
    from cxpredict.features.load import DataError
    from cxpredict.models.scoring import ScoringOptions
    from cxpredict.serving.batch.files import observed_scores
    from cxpredict.serving.batch.stream import stream_drift_counts

    loaded = load_champion(cfg, model_version)
    threads = threads or cfg.training.threads
    options = ScoringOptions.requested(level, explain, explain_target)
    try:
        observed = observed_scores(cfg) if survey_columns else None
    except DataError as err:  # a scoring job may run where the survey is not: say how to go on
        raise DataError(f"{err} (the survey columns need it; --no-survey-columns scores without them)") from None
    if engine is Engine.spark:
        from cxpredict.serving.batch.spark import score_spark

        summary = score_spark(cfg, loaded, input_path, out, master=master, options=options, observed=observed,
                              plausibility=cfg.scoring.plausibility)
    else:
        from cxpredict.serving.batch.stream import count_input_rows, score_stream, terminal_progress

        with terminal_progress(count_input_rows(input_path)) as progress:
            summary = score_stream(loaded, input_path, out, chunk_rows=chunk_rows, threads=threads,
                                   progress=progress, options=options, observed=observed,
                                   score_column=cfg.score.column, plausibility=cfg.scoring.plausibility)
    counts = stream_drift_counts(out)
    if counts is not None:
        _report_drift(*check_drift(cfg, loaded, counts=counts), out / "_drift.csv")
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(summary.rejects_by_reason.items())) or "none"
    typer.echo(
        f"input {summary.input_rows} rows = scored {summary.scored} + rejected {summary.rejected} "
        f"(reasons: {reasons}); {summary.parts} parts ({summary.parts_resumed} resumed) in {summary.seconds:.1f}s, "
        f"{summary.rows_per_second:,.0f} rows/s with {loaded.model_name} v{loaded.version} -> {out}"
    )
    if summary.implausible_scored:
        typer.echo(f"note: {summary.implausible_scored} rows with an implausible value were scored "
                   f"(scoring.plausibility: warn); the manifest counts them per part")


@app.command()
@cli_errors
def backtest(
    config: ConfigOption,
    survey_rate: Annotated[float, typer.Option(help="Share of customers kept as respondents")] = 0.03,
    repeats: Annotated[int, typer.Option(help="Independent repeats")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the hiding draws")] = 0,
    selection: Annotated[Selection, typer.Option(help="random or biased choice of kept respondents")]
    = Selection.biased,
    tune_trials: TuneTrialsOption = None,
    out: Annotated[Path | None, typer.Option(help="Write the report as JSON here")] = None,
) -> None:
    """Hide most respondents, train on the rest, and report accuracy on the hidden ones."""
    from cxpredict.features.load import load_dataset
    from cxpredict.training.backtest import backtest as run_backtest
    from cxpredict.training.project import link_project_run

    cfg = _load(config)
    dataset = load_dataset(cfg)
    with step_progress("backtest") as progress:
        report = run_backtest(cfg, dataset, survey_rate, repeats, seed, selection.value,  # type: ignore[arg-type]
                              tune_trials or None, progress=progress)
    if report.run_id:
        link_project_run(report.run_id, cfg.tracking_uri)
    summary = report.summary()
    table = Table(title=f"backtest: {selection} {survey_rate:.1%} kept, {repeats} repeats (hidden respondents)")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for metric, stats in summary.items():
        table.add_row(metric, f"{stats['mean']:.4f}", f"{stats['std']:.4f}")
    Console().print(table)
    payload = json.dumps(report.to_dict(), indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(payload)
        typer.echo(f"report -> {out}")
    typer.echo(f"mlflow run {report.run_id}")


TargetOption = Annotated[list[str] | None, typer.Option(
    "--target", help="Target to explain (repeatable): the bottom band, expected_score, cause_<code>, a driver "
                     "rating or churn; default all")]
SampleOption = Annotated[int, typer.Option(help="Customers explained for the tables (stratified sample)")]
MinSegmentOption = Annotated[int, typer.Option(help="Smallest segment allowed (customers)")]


@app.command()
@cli_errors
def explain(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for the driver tables and plots")],
    segment_by: CompareSegmentsOption = None,
    segment_alias: SegmentAliasOption = None,
    target: TargetOption = None,
    sample: SampleOption = 20_000,
    min_segment_size: MinSegmentOption = 30,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: training.seed)")] = None,
    model_version: ModelVersionOption = None,
) -> None:
    """SHAP key drivers: global and per-segment tables and plots, logged to an `explain-` MLflow run."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.training.drivers import explain_drivers

    segment = _segment_column(segment_by, segment_alias)
    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    with step_progress("explain") as progress:
        result = explain_drivers(cfg, loaded, dataset, out, segment=segment, targets=target, sample_size=sample,
                                 min_segment_size=min_segment_size, seed=seed, progress=progress)
    table = Table(title=f"top drivers ({result.sample.describe()})")
    for column in ("target", "rank", "feature", "mean |SHAP| ± SE", "direction"):
        table.add_column(column)
    for t in result.targets:
        rows = result.global_table[result.global_table["target"] == t.name].head(3)
        for row in rows.itertuples():
            table.add_row(t.name, str(row.rank), row.feature,
                          f"{row.mean_abs_shap:.4f} ± {row.se_mean_abs_shap:.4f}", row.direction)
    Console().print(table)
    _print_key_drivers(result)
    typer.echo(f"wrote {len(result.files)} files -> {out}")
    typer.echo(f"mlflow run {result.run_id} (explain-{cfg.name}, model v{loaded.version})")


@app.command()
@cli_errors
def report(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    segment_by: CompareSegmentsOption = None,
    segment_alias: SegmentAliasOption = None,
    target: TargetOption = None,
    sample: SampleOption = 5_000,
    min_segment_size: MinSegmentOption = 30,
    model_version: ModelVersionOption = None,
    explain_run: Annotated[str | None, typer.Option(
        help="Read the driver figures of this explain run (default: log a new one first)")] = None,
) -> None:
    """One self-contained HTML page for analysts: summary first, then score, band mix, drivers, segments, backtest."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.training.report import build_report

    segment = _segment_column(segment_by, segment_alias)
    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    with step_progress("report") as progress:
        path, run_id = build_report(cfg, loaded, dataset, out, segment=segment, targets=target, sample_size=sample,
                                    min_segment_size=min_segment_size, explain_run=explain_run, progress=progress)
    typer.echo(f"report -> {path} (driver figures from explain run {run_id})")


@app.command()
@cli_errors
def segments(
    config: ConfigOption,
    segment_by: Annotated[str | None, typer.Option("--segment-by", help="Customers column to segment by")] = None,
    segment_alias: SegmentAliasOption = None,
    out: Annotated[Path | None, typer.Option(help="Write the table as CSV here")] = None,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals")] = 0.95,
    model_version: ModelVersionOption = None,
) -> None:
    """Per segment: predicted score mix and doubly robust population score with an interval."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.training.segments import segment_figures

    by = _segment_column(segment_by, segment_alias)
    if by is None:
        raise ConfigError("segments needs --segment-by COLUMN (a customers column)")
    if not 0 < level < 1:
        raise ConfigError(f"--level must be between 0 and 1, got {level}")
    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    table = segment_figures(cfg, loaded.bundle, dataset, by, level, whole_population=True)  # checks `by`
    band_columns = [c for c in table.columns if c.startswith("p_")]
    view = Table(title=f"segments by {by}: doubly robust score, {level:.0%} interval (model v{loaded.version})")
    for column in ["segment", "n_customers", "n_respondents", *band_columns, "score (DR)", "interval",
                   "respondents only", "reliable"]:
        view.add_column(column, justify="left" if column == "segment" else "right")
    for row in table.to_dict("records"):
        view.add_row(
            row["segment"], str(row["n_customers"]), str(row["n_respondents"]),
            *[f"{row[c]:.3f}" for c in band_columns], f"{row['index_dr']:+.1f}",
            f"[{row['index_ci_low']:+.1f}, {row['index_ci_high']:+.1f}]", f"{row['index_respondents']:+.1f}",
            "yes" if row["reliable"] else f"no (<{cfg.trust.min_segment_respondents} respondents)",
        )
    Console(width=max(Console().width, 170)).print(view)  # the table is the point: never squeeze it
    typer.echo(_segment_sensitivity_line(table))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        typer.echo(f"segments -> {out}")


def _segment_sensitivity_line(table: Any) -> str:
    """How much unobserved selection the segment figures withstand, in one line (issue 17)."""
    import math

    from cxpredict.training.segments import WHOLE_POPULATION

    def finite(value: Any) -> bool:
        return isinstance(value, int | float) and math.isfinite(value)

    if "ranking_flip_lambda" not in table.columns:
        return "sensitivity: no response model in this bundle, so no range under unobserved selection"
    lam = table["ranking_flip_lambda"].iloc[0]
    ranking = ("the ranking of the reliable segments could change once unobserved selection bends the response "
               f"odds by Λ = {lam:.2f}" if finite(lam)
               else "the ranking of the reliable segments holds for every Λ up to 50 (or there are fewer than two)")
    whole = table[table["segment"] == WHOLE_POPULATION]
    flip = whole["sign_flip_lambda"].iloc[0] if len(whole) and "sign_flip_lambda" in whole else None
    sign = (f"; the whole population's sign could flip at Λ = {flip:.2f}" if finite(flip)
            else "; the whole population's sign holds up to Λ = 50")
    return f"sensitivity: {ranking}{sign} (columns index_dr_lambda_*: the doubly robust range at Λ 1.25, 1.5, 2)"


@app.command()
@cli_errors
def feedback(
    config: ConfigOption,
    survey: Annotated[Path, typer.Option("--survey", help="The new wave's answers (id and score columns)")],
    segment_by: SegmentByOption = None,
    segment_alias: SegmentAliasOption = None,
    history: Annotated[Path | None, typer.Option(help="History CSV (default: beside the config)")] = None,
    model_version: ModelVersionOption = None,
) -> None:
    """Measure the current model on a new survey wave, append the history and advise on retraining."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.training.feedback import record_feedback

    by = _segment_column(segment_by, segment_alias)
    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    result = record_feedback(cfg, loaded, dataset, survey, by, history)
    view = Table(title="feedback history (one row per wave)")
    columns = ["wave", "model_version", "n_answers", "log_loss", "macro_f1", "conformal_coverage", "retrain_advised"]
    shown = [c for c in columns if c in result.history.columns]
    for column in shown:
        view.add_column(column, justify="left" if column == "wave" else "right")
    for row in result.history[shown].to_dict("records"):
        view.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    Console(width=max(Console().width, 120)).print(view)
    typer.echo(f"wave {result.wave}: {result.reason}")
    typer.echo(f"history -> {result.paths['history']}; plot -> {result.paths['plot']}; mlflow run {result.run_id}")


@app.command("survey-plan")
@cli_errors
def survey_plan(
    config: ConfigOption,
    budget: Annotated[int, typer.Option(help="Number of silent customers to propose")],
    out: Annotated[Path, typer.Option(help="CSV for the survey tool")] = Path("survey_plan.csv"),
    segment_by: SegmentByOption = None,
    segment_alias: SegmentAliasOption = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (default: training.seed)")] = None,
    model_version: ModelVersionOption = None,
    goal: Annotated[
        SurveyGoal, typer.Option(help="coverage: fill thinly covered regions; precision: sharpest population score")
    ] = SurveyGoal.coverage,
) -> None:
    """Propose N silent customers to survey next, with the reason for each, as a CSV."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.training.survey_plan import plan_survey

    by = _segment_column(segment_by, segment_alias)
    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    plan = plan_survey(cfg, loaded.bundle, dataset, budget, by, seed, goal=goal.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.to_csv(out, index=False)
    reasons = ", ".join(f"{n} {r}" for r, n in plan["reason"].value_counts().items())
    typer.echo(f"proposed {len(plan)} silent customers ({reasons}) -> {out}")


@app.command()
@cli_errors
def simulate(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for effects, best strategy, segments, assignment, summary")],
    customers: Annotated[
        Path | None, typer.Option("--customers", help="CSV of customer ids to simulate (default: all)")
    ] = None,
    segment_filter: Annotated[
        list[str] | None, typer.Option("--segment-filter", help="COL=VAL (or COL=A,B); repeat to combine")
    ] = None,
    objective: Annotated[Objective, typer.Option(help="What 'best' maximises")] = Objective.value,
    budget: Annotated[float | None, typer.Option(help="Total cost allowed: plan customers and offers")] = None,
    segment_by: SegmentByOption = None,
    segment_alias: SegmentAliasOption = None,
    simulated_only: Annotated[
        bool, typer.Option("--simulated-only", help="Ignore effects learned from campaigns")
    ] = False,
    model_version: ModelVersionOption = None,
) -> None:
    """Rank retention strategies per customer and per segment; optionally plan a budget."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.serving.batch.simulation import prepare_simulation, run_simulation, write_simulation

    cfg = _load(config)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    request = prepare_simulation(
        cfg, dataset, ids_file=customers, filters=segment_filter or [], objective=objective.value,
        budget=budget, segment_by=_segment_column(segment_by, segment_alias), use_learned=not simulated_only,
        bundle=loaded.bundle,
    )
    with step_progress("simulate") as progress:
        report = run_simulation(cfg, loaded, request, progress=progress)
    paths = write_simulation(report, out)
    _print_segments(report.segments)
    summary = report.summary
    typer.echo(
        f"{summary['n_customers']} customers, {summary['n_effects']} eligible (customer, strategy) pairs; "
        f"{summary['n_with_strategy']} get a strategy (objective {objective.value})"
    )
    if report.plan is not None:
        plan = report.plan.summary()
        typer.echo(
            f"budget {plan['budget']:.2f}: {plan['n_targeted']} customers, spent {plan['spent']:.2f}, "
            f"total {objective.value} gain {plan['total_gain']:.2f} (LP bound {plan['lp_bound']:.2f})"
        )
    for note in summary["notes"]:
        typer.echo(f"note: {note}")
    for warning in summary["warnings"]:
        typer.echo(f"warning: {warning}")
    typer.echo(f"wrote {', '.join(p.name for p in paths.values())} -> {out}")


def _print_key_drivers(result: Any) -> None:
    """The key-driver table of the rated attributes (everyone), or why there is none."""
    analysis = result.key_drivers
    if analysis is None:
        typer.echo(result.key_drivers_note or "no key-driver analysis")
        return
    rows = analysis.of_segment()
    table = Table(title=f"key drivers of {analysis.score} ({int(rows['respondents'].iloc[0]):,} respondents, "
                        f"R² {rows['r2'].iloc[0]:.2f})")
    for column in ("rank", "attribute", "importance (95 % interval)", "mean rating", "quadrant"):
        table.add_column(column)
    for row in rows.itertuples():
        table.add_row(str(row.rank), row.attribute,
                      f"{row.importance:.1%} ({row.importance_low:.1%}–{row.importance_high:.1%})",
                      f"{row.performance:.2f}", row.quadrant)
    Console().print(table)


def _print_segments(segments: Any) -> None:
    table = Table(title="strategies x segments (means over eligible customers)")
    for column in ("segment", "strategy", "method", "n_eligible", "expected_score_strategy", "delta_churn",
                   "expected_total_value", "n_best"):
        table.add_column(column, justify="left" if column in ("segment", "strategy", "method") else "right")
    for row in segments.itertuples(index=False):
        table.add_row(
            str(row.segment), str(row.strategy), str(row.method), str(row.n_eligible),
            f"{row.expected_score_strategy:.2f}", f"{row.delta_churn:+.3f}", f"{row.expected_total_value:,.0f}",
            str(row.n_best),
        )
    Console(width=max(Console().width, 130)).print(table)  # the table is the point: never squeeze it


@app.command()
@cli_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo dataset, MLflow store and scores")] = Path("demo"),
    customers: Annotated[int, typer.Option(help="Number of customers")] = 100_000,
    survey_rate: Annotated[float, typer.Option(help="Share surveyed")] = 0.03,
    seed: Annotated[int, typer.Option(help="Random seed")] = 42,
    tune_trials: TuneTrialsOption = None,
) -> None:
    """Generate a synthetic company, train every model, score every customer, print a summary."""
    import pandas as pd

    from cxpredict.features.io import write_parquet_atomic
    from cxpredict.features.load import load_dataset
    from cxpredict.features.synthetic import generate_company, write_company
    from cxpredict.models.registry import load_champion
    from cxpredict.serving.batch.files import score_customers
    from cxpredict.training.train import train as run_training

    started = time.perf_counter()
    company = generate_company(customers, survey_rate, seed)
    config_path = write_company(company, out, name="demo")
    typer.echo(f"generated {customers} customers ({len(company.survey)} surveyed) -> {config_path}")
    cfg = load_config(config_path)
    dataset = load_dataset(cfg)
    result = run_training(cfg, dataset=dataset, tune_trials=tune_trials or None)
    typer.echo(f"trained in {time.perf_counter() - started:.0f}s: run {result.run_id}")
    scores = score_customers(cfg, load_champion(cfg), dataset)
    scores_path = write_parquet_atomic(scores, out / "scores.parquet")

    truth = pd.read_parquet(out / "truth.parquet")
    true_index = 100 * ((truth["true_band"] == "promoter").mean() - (truth["true_band"] == "detractor").mean())
    m = result.metrics
    table = Table(title="cxpredict demo")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("true population NPS (ground truth)", f"{true_index:+.1f}")
    table.add_row(
        "estimated population NPS (doubly robust, 95% interval)",
        f"{m['population_index']:+.1f}  [{m['population_index_ci_low']:+.1f}, {m['population_index_ci_high']:+.1f}]",
    )
    table.add_row("model-completed NPS (observed + predicted silent)", f"{m['population_index_model']:+.1f}")
    table.add_row("respondents-only NPS (naive)", f"{m['population_index_respondents']:+.1f}")
    if "population_index_ipw" in m:
        table.add_row("respondents, propensity-weighted NPS", f"{m['population_index_ipw']:+.1f}")
    table.add_row("survey response adversarial AUC", f"{m.get('propensity_adversarial_auc', float('nan')):.3f}")
    table.add_row("held-out respondents: band accuracy", f"{m['test_band_accuracy']:.3f}")
    table.add_row("held-out respondents: macro-F1", f"{m['test_macro_f1']:.3f}")
    table.add_row("held-out respondents: expected-score MAE", f"{m['test_expected_score_mae']:.2f}")
    if "test_churn_roc_auc" in m:
        table.add_row("held-out customers: churn ROC AUC", f"{m['test_churn_roc_auc']:.3f}")
    table.add_row("scores", str(scores_path))
    table.add_row("MLflow run", f"{result.run_id} ({mask_url(cfg.tracking_uri)})")
    table.add_row("wall time", f"{time.perf_counter() - started:.0f}s")
    Console().print(table)


store_app = typer.Typer(no_args_is_help=True, help="The customer store the API looks customers up in.")
app.add_typer(store_app, name="store")


def _serving_settings(**values: Any) -> Any:
    """Server settings from the environment (CXPREDICT_*) overridden by the given options."""
    from cxpredict.serving.api.settings import read_settings

    try:
        return read_settings(**{k: v for k, v in values.items() if v is not None})
    except ValueError as err:
        raise ConfigError(str(err)) from None


@store_app.command("load")
@cli_errors
def store_load(
    config: ConfigOption,
    store_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite beside the MLflow store)")]
    = None,
    table: Annotated[str | None, typer.Option(help="Customers table name (default: customers)")] = None,
    alerts: Annotated[bool, typer.Option(
        help="Then run the alert rules (config key `alerts`) when a champion is registered")] = True,
) -> None:
    """Load the customers table (and who answered the survey) into the store the API reads.

    When a champion is registered, values it cannot read stop the load (file, column, rows);
    with an `alerts` config the rules then run and the tasks are synced (`alerts run`).
    """
    from cxpredict.features.load import load_dataset
    from cxpredict.features.text_features import with_text_features
    from cxpredict.features.validation import check_rows
    from cxpredict.models.registry import champion_if_registered
    from cxpredict.serving.api.settings import store_url as resolve_store_url
    from cxpredict.serving.api.store import load_store

    cfg = _load(config)
    settings = _serving_settings(config=config, store_url=store_url, store_table=table)
    # The text features training saw, so the API scores a customer who complained as batch scoring does.
    dataset = with_text_features(cfg, load_dataset(cfg))
    champion = champion_if_registered(cfg)
    if champion is not None:  # the API will score these rows with it: stop on what it cannot read
        check_rows(champion.bundle.pipeline, dataset.customers, dataset.sources.get("customers", "customers"),
                   cfg.scoring.plausibility)
    report = load_store(cfg, dataset, resolve_store_url(settings, cfg), settings.store_table)
    typer.echo(f"stored {report.customers} customers ({report.respondents} surveyed) in table "
               f"'{report.table}' of {mask_url(report.url)}")
    if alerts and cfg.alerts and champion is not None:
        try:
            _run_alerts(cfg, champion, resolve_store_url(settings, cfg), settings.store_table, "store load (cli)")
        except ConfigError as err:
            raise ConfigError(f"store loaded, but the alert rules did not run: {err}") from None


alerts_app = typer.Typer(no_args_is_help=True, help="Alert rules and the tasks they open for the front line.")
app.add_typer(alerts_app, name="alerts")


def _run_alerts(cfg: CxConfig, loaded: Any, url: str, table: str, actor: str, chunk_rows: int = 50_000,
                threads: int | None = None) -> None:
    from cxpredict.serving.api.alerting import load_alert_setup, run_alerts
    from cxpredict.serving.api.notify import notifier_for
    from cxpredict.serving.api.store import CustomerStore
    from cxpredict.serving.api.tasks import TaskStore

    setup = load_alert_setup(cfg)
    store = CustomerStore(url, table, cfg.id_column)
    tasks = TaskStore(url, table, engine=store.engine)
    notifier = notifier_for(cfg)
    try:
        report = run_alerts(cfg, loaded.bundle, loaded.version, store, tasks, setup, actor,
                            threads=threads or cfg.training.threads, chunk_size=chunk_rows,
                            on_created=notifier.notify_created if notifier else None)
        if notifier is not None:
            notifier.drain()
    finally:
        store.close()
    sync = report.sync
    levels = ", ".join(f"{n} {level}" for level, n in sorted(report.matched_by_level.items())) or "none"
    typer.echo(f"alerts: {report.n_customers} customers, {sync.matched} matches ({levels}); tasks: "
               f"{sync.created} opened, {sync.kept_open} already open, {sync.resolved} resolved_by_model "
               f"in {report.seconds:.1f}s (model v{report.model_version}, run {sync.run_id})")
    for note in report.notes:
        typer.echo(f"note: {note}")


StoreUrlOption = Annotated[str | None, typer.Option(help="Customer store URL (default: SQLite beside MLflow)")]
StoreTableOption = Annotated[str | None, typer.Option("--table", help="Customers table name (default: customers)")]


@alerts_app.command("run")
@cli_errors
def alerts_run(
    config: ConfigOption,
    store_url: StoreUrlOption = None,
    table: StoreTableOption = None,
    model_version: ModelVersionOption = None,
    chunk_rows: Annotated[int, typer.Option(min=100, help="Customers scored at a time (bounds memory)")] = 50_000,
    threads: Annotated[int | None, typer.Option(help="LightGBM threads (default: training.threads)")] = None,
    actor: Annotated[str, typer.Option(help="Who the task events name")] = "alerts run (cli)",
) -> None:
    """Evaluate the alert rules for every customer of the store and sync the tasks (idempotent)."""
    from cxpredict.models.registry import load_champion
    from cxpredict.serving.api.settings import store_url as resolve_store_url

    cfg = _load(config)
    if not cfg.alerts:
        raise ConfigError(f"{config}: config key 'alerts' is not set (a file of alert rules, like strategies)")
    settings = _serving_settings(config=config, store_url=store_url, store_table=table)
    loaded = load_champion(cfg, model_version)
    _run_alerts(cfg, loaded, resolve_store_url(settings, cfg), settings.store_table, actor, chunk_rows, threads)


@alerts_app.command("export")
@cli_errors
def alerts_export(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for one CSV per owner")],
    owner: Annotated[str | None, typer.Option(help="Only this owner's file")] = None,
    all_owners: Annotated[bool, typer.Option("--all", help="Every owner with open tasks")] = False,
    store_url: StoreUrlOption = None,
    table: StoreTableOption = None,
) -> None:
    """Hand-off CSVs per owner: rank, customer, level, reason, suggested offer name, expected value, contacts."""
    from cxpredict.features.alerts import load_owners
    from cxpredict.serving.api.handoff import export_handoff
    from cxpredict.serving.api.settings import store_url as resolve_store_url
    from cxpredict.serving.api.store import CustomerStore
    from cxpredict.serving.api.tasks import TaskStore

    if (owner is None) == (not all_owners):
        raise ConfigError("alerts export needs exactly one of --owner ID or --all")
    cfg = _load(config)
    settings = _serving_settings(config=config, store_url=store_url, store_table=table)
    url = resolve_store_url(settings, cfg)
    owners = load_owners(cfg)
    if owner is not None and owner not in owners.ids:
        raise ConfigError(f"--owner '{owner}': not in the owners table (owners: {sorted(owners.ids)})")
    store = CustomerStore(url, settings.store_table, cfg.id_column)
    try:
        result = export_handoff(store, TaskStore(url, settings.store_table, engine=store.engine), owners, out,
                                owner)
    finally:
        store.close()
    for path, n in result.files.items():
        typer.echo(f"{n} open tasks -> {path}")
    typer.echo(f"{result.n_results} closed tasks with an offer -> {result.results_path} (campaign results format)")


@app.command()
@cli_errors
def serve(
    config: ConfigOption,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    store_url: Annotated[str | None, typer.Option(help="Customer store URL (default: SQLite beside MLflow)")]
    = None,
    reload_poll: Annotated[float | None, typer.Option(help="Check the champion alias every N seconds")] = None,
    log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="uvicorn log level")] = LogLevel.info,
) -> None:
    """Start the HTTP API (docs at /docs) serving the champion model."""
    import os

    import uvicorn

    if workers > 1 and reload_poll is None and not os.environ.get("CXPREDICT_RELOAD_POLL_S"):
        reload_poll = 30.0  # POST /v1/admin/reload reaches one worker; the others follow through the poll
        typer.echo("note: several workers: polling the alias every 30 s (--reload-poll to change)", err=True)
    overrides = {"config": str(config.resolve()), "store_url": store_url, "reload_poll_s": reload_poll}
    _serving_settings(**overrides)  # fail here, readably, rather than in every worker
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"CXPREDICT_{key.upper()}"] = str(value)
    uvicorn.run("cxpredict.serving.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level.value)

text_app = typer.Typer(no_args_is_help=True, help="Free text: code answers and tickets into causes, report on them.")
app.add_typer(text_app, name="text")


@text_app.command()  # named after the function: `cxpredict text code`
@cli_errors
def code(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="CSV of coded texts (one row per text)")] = Path("coded.csv"),
) -> None:
    """Code every survey answer and text: P(code) per code, top code, sentiment, evidence words."""
    from cxpredict.features.io import write_csv_atomic
    from cxpredict.features.load import load_dataset
    from cxpredict.features.text_features import code_dataset_texts

    cfg = _load(config)
    result = code_dataset_texts(cfg, load_dataset(cfg))
    write_csv_atomic(result.coded, out)
    for key in ("text_code_auc_macro", "text_sentiment_auc"):
        if key in result.metrics:
            typer.echo(f"{key.removeprefix('text_').replace('_', ' ')} (held out): {result.metrics[key]:.3f}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"coded {len(result.coded)} texts into {len(result.codeframe.codes)} codes -> {out}")


@text_app.command("report")
@cli_errors
def text_report_command(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("text_report.html"),
) -> None:
    """HTML for analysts: codes by frequency and band, verbatims (masked ids), sentiment trend, rising codes."""
    from cxpredict.features.load import load_dataset
    from cxpredict.features.text_features import code_dataset_texts
    from cxpredict.training.text_report import text_report

    cfg = _load(config)
    path, run_id = text_report(cfg, code_dataset_texts(cfg, load_dataset(cfg)), out)
    typer.echo(f"text report -> {path} (mlflow run {run_id})")


campaign_app = typer.Typer(no_args_is_help=True, help="Campaigns with a control group: plan, results, report, history.")
app.add_typer(campaign_app, name="campaign")
StoreUrlOption = Annotated[
    str | None, typer.Option(help="Customer store URL (default: CXPREDICT_STORE_URL, else SQLite beside MLflow)")
]
NameOption = Annotated[str, typer.Option("--name", help="Campaign name")]


def _campaign_store_url(config: Path, store_url: str | None) -> str:
    from cxpredict.serving.api.settings import store_url as resolve_store_url

    return resolve_store_url(_serving_settings(config=config, store_url=store_url), _load(config))


@campaign_app.command("plan")
@cli_errors
def campaign_plan(
    config: ConfigOption,
    name: NameOption,
    out: Annotated[Path, typer.Option(help="Folder for plan.csv and plan_summary.json")],
    budget: Annotated[float | None, typer.Option(help="Total cost allowed (default: every customer's best offer)")]
    = None,
    holdout: Annotated[float | None, typer.Option(help="Control share in [0, 0.9] (default: campaign.holdout)")]
    = None,
    segment_filter: Annotated[
        list[str] | None, typer.Option("--segment-filter", help="COL=VAL (or COL=A,B); repeat to combine")
    ] = None,
    objective: Annotated[str, typer.Option(help="value | churn | score")] = "value",
    seed: Annotated[int | None, typer.Option(help="Holdout seed (default: training.seed)")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a campaign of the same name")] = False,
    store_url: StoreUrlOption = None,
    model_version: ModelVersionOption = None,
) -> None:
    """Choose offers, hold out a stratified control group, write plan.csv and record the plan in the store."""
    from cxpredict.models.registry import load_scoring_inputs
    from cxpredict.serving.batch.simulation import prepare_simulation
    from cxpredict.training.campaigns import plan_campaign

    if holdout is not None and not 0.0 <= holdout <= 0.9:
        raise ConfigError(f"--holdout must be between 0 and 0.9, got {holdout}")
    cfg = _load(config)
    url = _campaign_store_url(config, store_url)
    dataset, loaded = load_scoring_inputs(cfg, model_version)
    request = prepare_simulation(cfg, dataset, filters=segment_filter or [], objective=objective, budget=budget,
                                 bundle=loaded.bundle)
    planned = plan_campaign(cfg, loaded.bundle, request.customers, request.strategies, name, out, budget, holdout,
                            objective, seed, replace, url, loaded.version)
    s = planned.plan.settings
    typer.echo(f"campaign '{name}' (wave {planned.wave}): {s['n_treated']} treated, {s['n_control']} control "
               f"(holdout {s['holdout']}, seed {s['seed']}, largest SMD {s['balance']['max_smd']:.3f}); "
               f"expected value of the treated {s['expected_value_treated']:,.2f}")
    for strategy, n in s["strategies"].items():
        typer.echo(f"  {strategy}: {n}")
    for warning in planned.warnings:
        typer.echo(f"warning: {warning}")

    typer.echo(f"wrote {planned.plan_path}; recorded in {mask_url(planned.store_url)}")


@campaign_app.command("results")
@cli_errors
def campaign_results(
    config: ConfigOption,
    name: NameOption,
    results: Annotated[Path, typer.Option(help="CSV or Parquet: id, churned 0/1 and/or the score, date")],
    store_url: StoreUrlOption = None,
) -> None:
    """Append what happened to a planned campaign's customers to the campaigns history (a new wave)."""
    import pandas as pd

    from cxpredict.features.campaigns import CampaignError, append_campaign_results
    from cxpredict.features.load import load_dataset

    cfg = _load(config)
    if not results.is_file():
        raise CampaignError(f"{results}: results file not found")
    try:
        frame = pd.read_parquet(results) if results.suffix.lower() == ".parquet" else pd.read_csv(results)
    except Exception as err:  # unreadable file: one line, whatever the parser's complaint
        raise CampaignError(f"{results}: cannot read: {type(err).__name__}: {err}") from None
    from cxpredict.serving.api.alerting import campaign_contact_outcomes

    known = set(load_dataset(cfg).customers[cfg.id_column].astype(str))
    url = _campaign_store_url(config, store_url)
    report = append_campaign_results(cfg, name, frame, url, str(results), known,
                                     contact_outcomes=campaign_contact_outcomes(url, name))
    contacted = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.contacted.items()))
    typer.echo(f"appended {report.rows} rows of campaign '{name}' (wave {report.wave}: {report.treated} treated, "
               f"{report.control} control; {report.with_churn} with churn, {report.with_score} with a score"
               f"{'; front-line outcomes: ' + contacted if contacted else ''}) -> {report.path}")


@campaign_app.command("report")
@cli_errors
def campaign_report_command(
    config: ConfigOption,
    name: NameOption,
    out: Annotated[Path, typer.Option(help="report.html or report.json")] = Path("campaign_report.html"),
    store_url: StoreUrlOption = None,
) -> None:
    """Did it make a difference? Treated vs control per strategy and problem group, with verdicts."""
    from cxpredict.training.campaigns import campaign_report

    cfg = _load(config)
    document = campaign_report(cfg, name, out, _campaign_store_url(config, store_url))
    for line in document["verdicts"] or ["no results yet: run `cxpredict campaign results`"]:
        typer.echo(line)
    typer.echo(f"wrote {out}")


@campaign_app.command("history")
@cli_errors
def campaign_history(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Plot of accuracy and value over waves")] = Path("campaign_history.png"),
) -> None:
    """Per wave: how well the champion that planned it predicted its customers, and the value realised."""
    from cxpredict.training.campaigns import iteration_history, plot_iteration_history

    cfg = _load(config)
    table = iteration_history(cfg)
    if table.empty:
        typer.echo("no iteration history yet: plan a campaign, append its results and train again")
        return
    rich = Table(title="accuracy and value over iterations")
    for column in table.columns:
        rich.add_column(column, justify="left" if column in ("run_id", "model_version") else "right")
    for row in table.itertuples(index=False):
        rich.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(Console().width, 130)).print(rich)
    plot_iteration_history(table, out)
    typer.echo(f"wrote {out}")


def _report_drift(drift: Any, warnings: list[str], drift_path: Path) -> None:
    """Write the drift table beside the scores, print its headline and any warnings (on stderr)."""
    if len(drift):
        drift.to_csv(drift_path, index=False)
        typer.echo(f"drift: max PSI {drift['psi'].max():.3f}, max unseen share "
                   f"{drift['unseen_share'].max():.1%} -> {drift_path}")
    for message in warnings:
        typer.echo(f"warning: drift: {message}", err=True)


def _print_rows(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]], wrap: int = 0,
                right: tuple[int, ...] = (2,)) -> None:
    # Names and values never wrap (scripts and tests read them whole); only column `wrap` may.
    # Off a terminal there is no width to fit, so the table gets room.
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, no_wrap=i != wrap, justify="right" if i in right else "left")
    for row in rows:
        table.add_row(*row)
    out.print(table)


if __name__ == "__main__":
    sys.exit(app(prog_name="cxpredict"))  # `python -m cxpredict.cli` (MLproject) names itself as the command
