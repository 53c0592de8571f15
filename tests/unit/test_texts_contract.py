"""The text contract (issue 18): codeframe file, `texts` table and survey free text, with named errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.load import DataError, load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.features.synthetic_text import DEMO_CODEFRAME, write_company_texts
from cxpredict.features.text_features import fuse_texts
from cxpredict.features.texts import load_codeframe, load_text_table, parse_codeframe, survey_text

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def text_company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("text_company")
    company = generate_company(600, 0.3, seed=5)
    write_company(company, out, name="texts")
    write_company_texts(company, out, seed=5)
    return out


def _config(folder: Path, **changes: object) -> CxConfig:
    raw = yaml.safe_load((folder / "cxpredict.yaml").read_text())
    for key, value in changes.items():
        target = raw
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    path = folder / "changed.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_config_accepts_the_text_keys(text_company: Path) -> None:
    config = load_config(text_company / "cxpredict.yaml")
    assert config.survey.text_column == "comment"
    assert config.codeframe == "codeframe.yaml"
    assert config.data.texts == "texts.csv"
    assert config.text.max_chars == 2000


def test_codeframe_empty_is_a_named_error() -> None:
    with pytest.raises(DataError, match=r"cf.yaml: the codeframe is empty"):
        parse_codeframe([], "cf.yaml")


def test_codeframe_duplicate_and_bad_ids_are_named() -> None:
    with pytest.raises(DataError, match=r"cf.yaml: code 2: duplicate id 'price'"):
        parse_codeframe([{"id": "price", "keywords": ["a"]}, {"id": "price", "keywords": ["b"]}], "cf.yaml")
    with pytest.raises(DataError, match=r"code 1: id 'Bad Id'"):
        parse_codeframe([{"id": "Bad Id", "keywords": ["a"]}], "cf.yaml")


def test_code_appearing_nowhere_is_a_named_error(text_company: Path, tmp_path: Path) -> None:
    frame = [*DEMO_CODEFRAME, {"id": "roaming", "name": "roaming", "keywords": ["roaming", "漫游"]}]
    (text_company / "cf_extra.yaml").write_text(yaml.safe_dump(frame, allow_unicode=True), encoding="utf-8")
    config = _config(text_company, codeframe="cf_extra.yaml")
    with pytest.raises(DataError, match=r"cf_extra.yaml: code 'roaming' appears nowhere"):
        fuse_texts(config, load_dataset(config))


def test_survey_code_missing_from_the_codeframe_is_named(text_company: Path) -> None:
    frame = [c for c in DEMO_CODEFRAME if c["id"] != "billing"]
    (text_company / "cf_short.yaml").write_text(yaml.safe_dump(frame, allow_unicode=True), encoding="utf-8")
    config = _config(text_company, codeframe="cf_short.yaml")
    with pytest.raises(DataError, match=r"survey.csv: cause code 'billing' is not in the codeframe"):
        fuse_texts(config, load_dataset(config))


def test_unknown_text_column_names_file_and_key(text_company: Path) -> None:
    config = _config(text_company, **{"survey.text_column": "why"})
    dataset = load_dataset(config)
    with pytest.raises(DataError, match=r"survey.csv: column 'why' named in config key 'survey.text_column'"):
        survey_text(config, dataset.survey, dataset.sources["survey"])


def test_text_for_unknown_customer_names_the_row(text_company: Path) -> None:
    texts = pd.read_csv(text_company / "texts.csv")
    texts.loc[3, "customer_id"] = "NOBODY"
    texts.to_csv(text_company / "texts_bad.csv", index=False)
    config = _config(text_company, **{"data.texts": "texts_bad.csv"})
    known = pd.Index(load_dataset(config).customers["customer_id"])
    with pytest.raises(DataError, match=r"texts_bad.csv: column 'customer_id': text for unknown customer 'NOBODY' "
                                        r"in rows 4"):
        load_text_table(config, known)


def test_non_utf8_text_names_file_and_row(text_company: Path) -> None:
    lines = (text_company / "texts.csv").read_bytes().split(b"\n")
    lines[5] = lines[5] + "账单".encode("gb18030")  # a GBK export: not UTF-8
    (text_company / "texts_gbk.csv").write_bytes(b"\n".join(lines))
    config = _config(text_company, **{"data.texts": "texts_gbk.csv"})
    known = pd.Index(load_dataset(config).customers["customer_id"])
    with pytest.raises(DataError, match=r"texts_gbk.csv: not UTF-8 text at byte \d+ in row 5"):
        load_text_table(config, known)


def test_non_utf8_survey_names_file_and_row(text_company: Path) -> None:
    lines = (text_company / "survey.csv").read_bytes().split(b"\n")
    lines[2] = lines[2] + "差".encode("gb18030")
    (text_company / "survey_gbk.csv").write_bytes(b"\n".join(lines))
    config = _config(text_company, **{"data.survey": "survey_gbk.csv"})
    with pytest.raises(DataError, match=r"survey_gbk.csv: not UTF-8 text at byte \d+ in row 2"):
        load_dataset(config)


def test_long_text_is_cut_and_counted_not_an_error(text_company: Path) -> None:
    texts = pd.read_csv(text_company / "texts.csv")
    texts.loc[0, "text"] = "bill " * 1000
    texts.loc[1, "text"] = "信号" * 2000
    texts.to_csv(text_company / "texts_long.csv", index=False)
    config = _config(text_company, **{"data.texts": "texts_long.csv", "text.max_chars": 300})
    known = pd.Index(load_dataset(config).customers["customer_id"])
    table = load_text_table(config, known)
    assert table is not None
    assert table.truncated == 2
    assert table.frame["text"].str.len().max() == 300
    assert len(table.frame) == len(texts)  # nothing dropped


def test_codeframe_file_not_found_is_named(text_company: Path) -> None:
    config = _config(text_company, codeframe="missing.yaml")
    with pytest.raises(DataError, match=r"missing.yaml: codeframe file not found"):
        load_codeframe(config)
