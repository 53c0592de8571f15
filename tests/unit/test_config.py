"""The dataset config (`cxpredict.yaml`): contract keys, band rules, defaults and error messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxpredict.features.config import ConfigError, CxConfig, load_config, parse_config

pytestmark = pytest.mark.unit

NPS_BANDS = {"detractor": [0, 6], "passive": [7, 8], "promoter": [9, 10]}


def minimal_raw(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "acme",
        "id_column": "customer_id",
        "data": {"customers": "customers.csv", "survey": "survey.csv"},
        "score": {"column": "nps", "scale": [0, 10], "bands": copy.deepcopy(NPS_BANDS)},
    }
    raw.update(overrides)
    return raw


def parse(raw: dict[str, Any], base_dir: Path = Path("/data/acme")) -> CxConfig:
    return parse_config(raw, base_dir, source="acme/cxpredict.yaml")


def write_config(folder: Path, raw: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cxpredict.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- bands ----------------------------------------------------------------------------------


def test_config_bands_are_ordered_and_map_every_level() -> None:
    score = parse(minimal_raw()).score
    assert score.levels == list(range(11))
    assert score.band_names == ["detractor", "passive", "promoter"]
    assert [score.band_of(v) for v in (0, 6, 7, 8, 9, 10)] == [
        "detractor", "detractor", "passive", "passive", "promoter", "promoter",
    ]
    assert (score.top_band, score.bottom_band) == ("promoter", "detractor")
    with pytest.raises(KeyError):
        score.band_of(11)


def test_config_bands_not_covering_the_scale_name_the_gap() -> None:
    raw = minimal_raw()
    raw["score"]["bands"] = {"detractor": [0, 6], "promoter": [9, 10]}
    with pytest.raises(ConfigError) as err:
        parse(raw)
    message = str(err.value)
    assert message.startswith("acme/cxpredict.yaml: key 'score'")
    assert "do not cover the scale" in message and "[7, 8]" in message


def test_config_overlapping_bands_name_both_bands() -> None:
    raw = minimal_raw()
    raw["score"]["bands"] = {"detractor": [0, 7], "passive": [7, 8], "promoter": [9, 10]}
    with pytest.raises(ConfigError, match=r"score\.bands\.passive: 7 is also in band detractor"):
        parse(raw)


def test_config_band_outside_the_scale_is_refused() -> None:
    raw = minimal_raw()
    raw["score"]["bands"] = {"detractor": [0, 6], "passive": [7, 8], "promoter": [9, 11]}
    with pytest.raises(ConfigError, match=r"score\.bands\.promoter: 11 is outside score\.scale \[0, 10\]"):
        parse(raw)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        ({"scale": [10, 0]}, r"low < high"),
        ({"bands": {"all": [0, 10]}}, r"at least two bands"),
        ({"bands": {"low": [6, 0], "high": [7, 10]}}, r"score\.bands\.low: low 6 is above high 0"),
        ({"positive_band": "fans"}, r"score\.positive_band 'fans' is not one of the bands"),
    ],
)
def test_config_other_band_mistakes_are_refused(score: dict[str, Any], expected: str) -> None:
    raw = minimal_raw()
    raw["score"].update(score)
    with pytest.raises(ConfigError, match=expected):
        parse(raw)


def test_config_csat_bands_with_explicit_index_bands() -> None:
    raw = minimal_raw(score={
        "column": "csat", "scale": [1, 5], "bands": {"unhappy": [1, 2], "neutral": [3, 3], "happy": [4, 5]},
        "positive_band": "neutral", "negative_band": "unhappy",
    })
    score = parse(raw).score
    assert score.levels == [1, 2, 3, 4, 5]
    assert (score.top_band, score.bottom_band) == ("neutral", "unhappy")


# --- unknown keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda r: r.update(nmae="typo"), "nmae"),
        (lambda r: r.update(training={"tune_trails": 3}), "training.tune_trails"),
        (lambda r: r["data"].update(custmers="c.csv"), "data.custmers"),
        (lambda r: r.update(mlflow={"tracking_url": "sqlite://"}), "mlflow.tracking_url"),
        # a table entry is a union (path | SQL table | file entry): the key is still named plainly
        (lambda r: r["data"].update(customers={"path": "c.csv", "colums": ["a"]}), "data.customers.colums"),
        (lambda r: r["data"].update(customers=["c.csv", {"path": "z.csv", "kye": "zip"}]), "data.customers.1.kye"),
    ],
)
def test_config_unknown_key_is_named(mutate: Any, key: str) -> None:
    raw = minimal_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse(raw)
    message = str(err.value)
    assert f"key '{key}': unknown key" in message
    assert "SqlTable" not in message and "FileTable" not in message
    assert "\n" not in message


def test_config_missing_required_key_is_named() -> None:
    raw = minimal_raw()
    del raw["data"]["survey"]
    with pytest.raises(ConfigError, match=r"key 'data\.survey': Field required"):
        parse(raw)


def test_config_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"key 'training\.seed': Input should be a valid integer"):
        parse(minimal_raw(training={"seed": "forty-two"}))
    with pytest.raises(ConfigError, match=r"key 'training\.tune_trials': .*at least 1"):
        parse(minimal_raw(training={"tune_trials": 0}))


# --- causes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("causes", [{}, {"column": "causes", "columns": ["c_price", "c_network"]}])
def test_config_causes_need_exactly_one_form(causes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"key 'causes': causes needs exactly one of `column`"):
        parse(minimal_raw(causes=causes))


def test_config_causes_either_form_is_accepted() -> None:
    coded = parse(minimal_raw(causes={"column": "causes", "separator": "|"})).causes
    assert coded is not None and coded.column == "causes" and coded.columns is None and coded.separator == "|"
    flags = parse(minimal_raw(causes={"columns": ["c_price", "c_network"]})).causes
    assert flags is not None and flags.column is None and flags.columns == ["c_price", "c_network"]


# --- paths and defaults ---------------------------------------------------------------------


def test_config_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "datasets" / "acme"
    write_config(folder, minimal_raw())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # data paths must not depend on where the command runs
    config = load_config(Path("..") / "datasets" / "acme" / "cxpredict.yaml")
    monkeypatch.chdir(tmp_path)
    assert config.base_dir == folder.resolve()
    assert config.resolve("customers.csv") == folder.resolve() / "customers.csv"
    assert config.resolve("sub/survey.csv") == folder.resolve() / "sub" / "survey.csv"
    assert config.resolve("/abs/outcomes.csv") == Path("/abs/outcomes.csv")


def test_config_defaults_for_mlflow_and_training(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "acme", minimal_raw()))
    folder = (tmp_path / "acme").resolve()
    assert config.tracking_uri == f"sqlite:///{folder / 'mlflow.db'}"
    assert config.experiment_name == "cxpredict-acme"
    assert config.registered_model_name == "cxpredict-acme"
    assert config.artifact_location == (folder / "mlartifacts").as_uri()
    assert config.training.seed == 42 and config.training.tune_trials == 30
    assert config.training.bias_correction is True and config.training.min_respondents == 50
    assert config.features.exclude == [] and config.drivers == [] and config.causes is None
    assert config.churn is None and config.rename == {}


def test_config_explicit_mlflow_keys_win(tmp_path: Path) -> None:
    raw = minimal_raw(mlflow={
        "tracking_uri": "postgresql://mlflow@db/mlflow", "experiment": "exp", "registered_model": "reg",
        "artifact_location": "s3://bucket/cx",
    })
    config = load_config(write_config(tmp_path, raw))
    assert config.tracking_uri == "postgresql://mlflow@db/mlflow"
    assert (config.experiment_name, config.registered_model_name) == ("exp", "reg")
    assert config.artifact_location == "s3://bucket/cx"


def test_config_table_sources_in_every_form() -> None:
    raw = minimal_raw()
    raw["data"] = {
        "customers": ["base.csv", {"path": "zip.csv", "columns": ["population"], "key": "zip_code"}],
        "survey": {"url": "sqlite:///cx.db", "table": "survey"},
        "outcomes": "outcomes.parquet",
    }
    data = parse(raw).data
    assert isinstance(data.customers, list) and data.customers[0] == "base.csv"
    assert data.customers[1].key == "zip_code"  # type: ignore[union-attr]
    assert data.survey.table == "survey"  # type: ignore[union-attr]


# --- reading the file -----------------------------------------------------------------------


def test_config_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_file_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line \d+, column \d+: not valid YAML") as caught:
        load_config(broken)
    assert "\n" not in str(caught.value)
    listing = tmp_path / "list.yaml"
    listing.write_text("- name\n- id_column\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping"):
        load_config(listing)


def test_config_error_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "acme", minimal_raw(trainig={"seed": 1}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: key 'trainig': unknown key (not part of the config contract)"


def test_config_yaml_error_names_line_and_column_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "tabs.yaml"
    broken.write_text("name: x\nid_column: id\n\tscore: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert str(caught.value).startswith(f"{broken}: line 3, column 1: not valid YAML")
    assert "\n" not in str(caught.value)


def test_config_not_utf8_names_the_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: x\nid_column: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml: line 2: not UTF-8 text \(byte 0xe9\)"):
        load_config(latin)


def test_config_size_limits(tmp_path: Path) -> None:
    from cxpredict.features.config import MAX_CONFIG_BYTES, MAX_CONFIG_KEYS

    big = tmp_path / "big.yaml"
    big.write_text("name: x\n# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: [\d,]+ bytes; a config file may have at most"):
        load_config(big)
    many = tmp_path / "many.yaml"
    many.write_text("display_names:\n" + "".join(f"  c{i}: x\n" for i in range(MAX_CONFIG_KEYS + 1)))
    with pytest.raises(ConfigError, match=r"many\.yaml: [\d,]+ keys and list items; a config may have at most"):
        load_config(many)


def test_data_paths_stay_inside_the_config_folder(tmp_path: Path) -> None:
    raw = {**minimal_raw(), "data": {"customers": "../../x.csv", "survey": "s.csv"}}
    with pytest.raises(ConfigError, match=r"data\.customers: path '\.\./\.\./x\.csv' resolves outside"):
        parse_config(raw, tmp_path)
    assert parse_config({**raw, "data": {**raw["data"], "allow_outside": True}}, tmp_path)
    entry = {**minimal_raw(), "data": {"customers": [{"path": "../x.csv", "allow_outside": True}], "survey": "s.csv"}}
    assert parse_config(entry, tmp_path)
    absolute = {**minimal_raw(), "data": {"customers": str(tmp_path.parent / "x.csv"), "survey": "s.csv"}}
    assert parse_config(absolute, tmp_path)
    sql = {**minimal_raw(), "data": {"customers": {"url": "sqlite:///../../x.db", "table": "c"}, "survey": "s.csv"}}
    assert parse_config(sql, tmp_path)  # SQL sources are not paths
