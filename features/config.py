"""The typed dataset config (`cxpredict.yaml`): read once, validated, passed down.

Key names are the data contract of DESIGN.md: add keys, never rename them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file that breaks the contract; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlTable(_Strict):
    """A table read from a database through SQLAlchemy."""

    url: str
    table: str


class FileTable(_Strict):
    """A file, optionally restricted to some columns and joined on a key other than the id."""

    path: str
    columns: list[str] | None = None
    key: str | None = None  # join key when it is not id_column (e.g. a zip-code lookup table)
    allow_outside: bool = False  # a relative path may leave the config's folder (`../shared/x.csv`)


TableSource = str | SqlTable | FileTable
CustomersSource = TableSource | list[str | FileTable]


class DataConfig(_Strict):
    customers: CustomersSource
    survey: TableSource
    outcomes: TableSource | None = None
    campaigns: TableSource | None = None
    owners: TableSource | None = None  # who tasks are routed to: owner_id, name, contact, covers
    texts: TableSource | None = None  # complaint / ticket / review text for any customer: id, date, channel, text
    # Relative data paths may leave the config's folder (default: they must stay inside it;
    # absolute paths and SQL tables are never restricted).
    allow_outside: bool = False


class FeaturesConfig(_Strict):
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    # Columns read as text even when most values are numbers, yes/no values or dates: training does
    # not stop on their other values (features/validation.py `check_training_columns`).
    text: list[str] = Field(default_factory=list)


class ScoringConfig(_Strict):
    """How scoring treats values outside the plausible range learned at training (features/validation.py)."""

    # reject: the row is rejected (`implausible value`; API 422); warn: scored, counted and logged.
    plausibility: Literal["reject", "warn"] = "reject"
    # Compiled trees (models/compiled.py): each booster compiled to native code once per model
    # version and machine, checked equal to LightGBM (1e-9); `score --no-compile` turns it off.
    compile: bool = True
    # Cache of compiled libraries, relative to the config's folder; default `.cxpredict-compiled`.
    compile_cache: str | None = None


class ScoreConfig(_Strict):
    column: str
    scale: tuple[int, int]
    bands: dict[str, tuple[int, int]]
    # The headline index is 100·(P(top band) − P(bottom band)); NPS by default.
    positive_band: str | None = None
    negative_band: str | None = None

    @model_validator(mode="after")
    def _bands_cover_scale(self) -> ScoreConfig:
        low, high = self.scale
        if low >= high:
            raise ValueError(f"score.scale must be [low, high] with low < high, got {list(self.scale)}")
        if len(self.bands) < 2:
            raise ValueError("score.bands needs at least two bands")
        covered: dict[int, str] = {}
        for band, (b_low, b_high) in self.bands.items():
            if b_low > b_high:
                raise ValueError(f"score.bands.{band}: low {b_low} is above high {b_high}")
            for value in range(b_low, b_high + 1):
                if value < low or value > high:
                    raise ValueError(f"score.bands.{band}: {value} is outside score.scale {list(self.scale)}")
                if value in covered:
                    raise ValueError(f"score.bands.{band}: {value} is also in band {covered[value]}")
                covered[value] = band
        missing = [v for v in range(low, high + 1) if v not in covered]
        if missing:
            raise ValueError(f"score.bands do not cover the scale: no band holds {missing}")
        for key in ("positive_band", "negative_band"):
            name = getattr(self, key)
            if name is not None and name not in self.bands:
                raise ValueError(f"score.{key} '{name}' is not one of the bands {list(self.bands)}")
        return self

    @property
    def levels(self) -> list[int]:
        return list(range(self.scale[0], self.scale[1] + 1))

    @property
    def band_names(self) -> list[str]:
        return sorted(self.bands, key=lambda b: self.bands[b][0])

    @property
    def top_band(self) -> str:
        return self.positive_band or self.band_names[-1]

    @property
    def bottom_band(self) -> str:
        return self.negative_band or self.band_names[0]

    def band_of(self, level: int) -> str:
        for band, (b_low, b_high) in self.bands.items():
            if b_low <= level <= b_high:
                return band
        raise KeyError(level)


class CausesConfig(_Strict):
    column: str | None = None  # separator-joined cause codes
    columns: list[str] | None = None  # or one 0/1 flag column per cause
    separator: str = ";"

    @model_validator(mode="after")
    def _one_form(self) -> CausesConfig:
        if (self.column is None) == (self.columns is None):
            raise ValueError("causes needs exactly one of `column` (coded list) or `columns` (0/1 flags)")
        return self


class ChurnConfig(_Strict):
    column: str
    # Use out-of-fold predicted experience (expected score, P(bottom band)) as churn features.
    use_experience: bool = True


class TrainingConfig(_Strict):
    seed: int = 42
    tune_trials: int = 30
    tune_timeout_s: float | None = None  # time budget per model; None means trials only
    bias_correction: bool = True
    max_weight: float = Field(20.0, gt=1.0)  # inverse-propensity weights (mean 1) are clipped here
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.5)  # respondents held out for test_* metrics
    min_respondents: int = 50
    threads: int = 2
    # Optuna storage URL (e.g. postgresql://...) shared by processes tuning the same data together.
    study_storage: str | None = None
    # Customers explained for the key-driver tables logged with every training run (0: none).
    driver_sample: int = Field(5000, ge=0)
    # Issue 15: fit targets as an averaged ensemble of diverse learners (tuned + regularised
    # LightGBM, CatBoost, spline/one-hot linear); false keeps the single tuned LightGBM.
    ensemble: bool = False
    # Which targets the ensemble covers: score, churn, causes, drivers, expected_score.
    ensemble_targets: list[Literal["score", "churn", "causes", "drivers", "expected_score"]] = Field(
        default_factory=lambda: ["score", "churn"])
    # Targets with more rows keep the single LightGBM: the ensemble is for small samples (and its
    # CatBoost member's cost grows with the rows).
    ensemble_max_rows: int = Field(10_000, ge=1)
    # Fewer training rows than this: the tuner searches regularised settings only (issue 15); 0: off.
    # Off by default: measured 1.8x the fit CPU on a 370-respondent company with no held-out gain shown.
    small_sample_respondents: int = Field(0, ge=0)

    @field_validator("tune_trials")
    @classmethod
    def _positive_trials(cls, v: int) -> int:
        if v < 1:
            raise ValueError("training.tune_trials must be at least 1")
        return v


class TrustConfig(_Strict):
    """Uncertainty, segment, drift and survey-planning settings (issue 7)."""

    level: float = Field(0.9, gt=0.0, lt=1.0)  # nominal coverage of prediction sets and intervals
    low_support_ratio: float = Field(0.1, gt=0.0, lt=1.0)  # propensity below ratio·response rate: low support
    min_segment_respondents: int = 30  # fewer respondents in a segment: its figure is not reported as reliable
    drift_psi_warn: float = Field(0.2, gt=0.0)  # PSI above this on any feature logs a warning
    drift_unseen_warn: float = Field(0.05, ge=0.0, le=1.0)  # share of unseen categories that warns
    retrain_log_loss_increase: float = Field(0.1, gt=0.0)  # relative log-loss degradation that advises retraining


class ProblemGroupsConfig(_Strict):
    """Problem groups (issue 13): each customer's cause with the highest lift over its base rate among respondents."""

    # A customer whose highest lift (P(cause) / the cause's share among respondents) is below this
    # is in group `none`: no cause is clearly raised. 1.5 = "half as likely again as the average respondent".
    min_lift: float = Field(1.5, gt=1.0)


class CampaignConfig(_Strict):
    """Campaign plans and results (issue 13)."""

    holdout: float = Field(0.1, ge=0.0, le=0.9)  # default share of the chosen customers kept as the control group
    max_smd: float = Field(0.1, gt=0.0)  # control groups are redrawn (seeded) until every main feature's SMD is below
    min_group_rows: int = Field(30, ge=1)  # treated and control rows a report cell needs for Qini / AUUC


class SurveyConfig(_Strict):
    """Survey columns beyond the score, causes and drivers (issue 18)."""

    text_column: str | None = None  # the free-text answer ("why did you give this score?")


class TextConfig(_Strict):
    """How texts are read, coded and turned into features (issue 18)."""

    # Longer texts are cut here (counted in the summary, never an error that stops scoring).
    max_chars: int = Field(2000, ge=20)
    recent_days: int = Field(30, ge=1)  # "recent" text features count texts this many days before the latest text
    # Columns of the `texts` table (after `rename`).
    date_column: str = "date"
    channel_column: str = "channel"
    text_column: str = "text"
    # Survey answers whose code probability reaches this become cause labels when the survey has no coded causes.
    label_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # Respondents' text features come from coders fitted on the other folds (no answer codes its own author).
    cross_fit_folds: int = Field(5, ge=2, le=20)


class MlflowConfig(_Strict):
    tracking_uri: str | None = None  # default: sqlite file beside the config
    experiment: str | None = None  # default: cxpredict-<name>
    registered_model: str | None = None  # default: cxpredict-<name>
    artifact_location: str | None = None  # default: ./mlartifacts beside the config


class WebhookConfig(_Strict):
    """Where new tasks are posted as JSON (optional; off unless listed)."""

    url: str = Field(pattern=r"^https?://")
    levels: list[str] = Field(default_factory=lambda: ["critical"])  # which tasks' levels are posted
    timeout_s: float = Field(5.0, gt=0.0)
    retries: int = Field(3, ge=0, le=10)  # attempts after the first, with exponential back-off
    backoff_s: float = Field(0.5, ge=0.0)  # first wait; doubles per retry

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, levels: list[str]) -> list[str]:
        unknown = [level for level in levels if level not in ("critical", "high", "medium")]
        if unknown:
            raise ValueError(f"unknown level '{unknown[0]}', use critical, high or medium")
        return levels


class CxConfig(_Strict):
    name: str
    id_column: str
    data: DataConfig
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    rename: dict[str, str] = Field(default_factory=dict)
    value_column: str | None = None
    score: ScoreConfig
    causes: CausesConfig | None = None
    drivers: list[str] = Field(default_factory=list)
    # Business labels for columns in the report and the console ({column: "Monthly charge"}).
    display_names: dict[str, str] = Field(default_factory=dict)
    survey_date_column: str | None = None  # the survey's answer date (waves); default: a column ending in "date"
    churn: ChurnConfig | None = None
    survey: SurveyConfig = Field(default_factory=SurveyConfig)
    codeframe: str | None = None  # cause codes with names and seed keywords (codeframe.yaml)
    text: TextConfig = Field(default_factory=TextConfig)
    strategies: str | None = None
    alerts: str | None = None  # alert rules file (alerts.yaml); tasks route to `data.owners`
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    problem_groups: ProblemGroupsConfig = Field(default_factory=ProblemGroupsConfig)
    campaign: CampaignConfig = Field(default_factory=CampaignConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    # Outcomes every customer has (columns of `data.outcomes`) that follow the score but not, given the
    # score and the columns, who answered: the shadow outcomes of the population score (default: churn).
    shadow_outcomes: list[str] | None = None
    # Folder the relative paths above are read from; set by load_config, not by users.
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    @model_validator(mode="after")
    def _data_paths_inside(self) -> CxConfig:
        """A relative data path must stay in the config's folder: a shared config cannot read `../../x`."""
        base = self.base_dir.resolve()
        for key in ("customers", "survey", "outcomes", "campaigns", "owners"):
            sources = getattr(self.data, key)
            for i, source in enumerate(sources if isinstance(sources, list) else [sources]):
                path = source if isinstance(source, str) else getattr(source, "path", None)
                allowed = self.data.allow_outside or getattr(source, "allow_outside", False)
                if path is None or allowed or Path(path).is_absolute():
                    continue
                if not (base / path).resolve().is_relative_to(base):
                    where = f"data.{key}" + (f".{i}" if isinstance(sources, list) else "")
                    raise ValueError(
                        f"{where}: path '{path}' resolves outside the config's folder {base}; "
                        "give an absolute path or set allow_outside: true")
        return self

    def resolve(self, path: str) -> Path:
        """A config path made absolute against the config file's folder."""
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def shadow_outcome_columns(self) -> list[str]:
        """The shadow outcomes in use: `shadow_outcomes`, else the churn column when there is one."""
        if self.shadow_outcomes is not None:
            return list(self.shadow_outcomes)
        return [self.churn.column] if self.churn is not None and self.data.outcomes is not None else []

    @property
    def tracking_uri(self) -> str:
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{(self.base_dir / 'mlflow.db').resolve()}"

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"cxpredict-{self.name}"

    @property
    def registered_model_name(self) -> str:
        return self.mlflow.registered_model or f"cxpredict-{self.name}"

    @property
    def artifact_location(self) -> str:
        if self.mlflow.artifact_location:
            return self.mlflow.artifact_location
        return (self.base_dir / "mlartifacts").resolve().as_uri()


def _union_tags(raw: Any, error: Any) -> set[int]:
    """Positions in an error's location that name a union alternative (e.g. 'FileTable'), not input keys."""
    loc = error["loc"]
    tags: set[int] = set()
    node: Any = raw
    for i, part in enumerate(loc):
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if present:
            node = node[part]
        elif not (i == len(loc) - 1 and error["type"] == "missing"):
            tags.add(i)  # only a missing key may be absent from the input
    return tags


def _format_validation_error(path: Path, err: ValidationError, raw: dict[str, Any] | None = None) -> str:
    """One line naming the offending key.

    For a union (a table given as a path, a SQL table or a file entry) pydantic reports an error
    per alternative; the deepest error of the alternative with the fewest errors is the one the
    user meant, and the alternatives' names are left out of the key.
    """
    errors = err.errors()
    raw = raw or {}
    tags = [_union_tags(raw, e) for e in errors]
    branches = [e["loc"][: max(t) + 1] if t else e["loc"] for e, t in zip(errors, tags, strict=True)]
    roots = [e["loc"][: min(t)] if t else e["loc"] for e, t in zip(errors, tags, strict=True)]
    size = {b: branches.count(b) for b in branches}
    best = max(
        range(len(errors)),
        key=lambda i: (len(errors[i]["loc"]), -size[branches[i]], errors[i]["type"] == "extra_forbidden"),
    )
    first = errors[best]
    where = ".".join(str(p) for i, p in enumerate(first["loc"]) if i not in tags[best]) or "<root>"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (not part of the config contract)"
    # Errors of the other alternatives of the same union are noise, not further problems.
    others = sum(
        1 for i in range(len(errors))
        if i != best and (branches[i] == branches[best] or roots[i][: len(roots[best])] != roots[best])
    )
    more = f" (and {others} more)" if others else ""
    return f"{path}: key '{where}': {message}{more}"


def parse_config(raw: dict[str, Any], base_dir: Path, source: str = "<config>") -> CxConfig:
    """Validate a config mapping; relative paths resolve against `base_dir`."""
    try:
        return CxConfig.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(Path(source), err, raw)) from None


MAX_CONFIG_BYTES = 1_000_000  # a real config is a few kilobytes; 6.7 MB configs made loading 6x slower
MAX_CONFIG_KEYS = 10_000  # mapping keys and list items, all levels together


def read_yaml_text(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """A YAML file's data; every failure is one line naming the file (and the line and column)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{path}: {size:,} bytes; a config file may have at most {max_bytes:,} bytes")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                          "save the file as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(str(err.problem or err.context or "syntax error").split())
        raise ConfigError(f"{path}: {where}not valid YAML: {what}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None


def count_keys(node: Any) -> int:
    """Mapping keys and list items at every level (iteratively: a deep file cannot overflow the stack)."""
    count, stack = 0, [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            count += len(item)
            stack.extend(item)
    return count


def load_config(path: str | Path) -> CxConfig:
    """Read and validate `cxpredict.yaml`.

    Args:
        path: the config file.
    Returns:
        The validated config, with `base_dir` set to the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = read_yaml_text(path)
    if count_keys(raw) > MAX_CONFIG_KEYS:
        raise ConfigError(f"{path}: {count_keys(raw):,} keys and list items; a config may have at most "
                          f"{MAX_CONFIG_KEYS:,}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return parse_config(raw, path.parent.resolve(), str(path))
