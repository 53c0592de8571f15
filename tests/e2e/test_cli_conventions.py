"""CLI conventions: --version, choices as enums, one-line usage errors, one segment option, quiet progress."""

from __future__ import annotations

import io
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from rich.console import Console

from cxpredict.cli import step_progress
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def _one_error_line(done, *needles: str) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    done = run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cxpredict {version('cxpredict')}"


@pytest.mark.parametrize(("args", "option", "allowed"), [
    (("serve", "--config", "c.yaml", "--log-level", "loud"), "--log-level", "'warning'"),
    (("score", "--config", "c.yaml", "--out", "s.parquet", "--engine", "gpu"), "--engine", "'spark'"),
    (("backtest", "--config", "c.yaml", "--selection", "odd"), "--selection", "'biased'"),
    (("simulate", "--config", "c.yaml", "--out", "o", "--objective", "fun"), "--objective", "'churn'"),
])
def test_invalid_choice_is_one_line_naming_the_choices(tmp_path: Path, args: tuple[str, ...], option: str,
                                                       allowed: str) -> None:
    line = _one_error_line(run_cli(*args, cwd=tmp_path), option, allowed, f"cxpredict {args[0]}")
    assert args[-1] in line


@pytest.mark.parametrize("args", [
    ("score", "--config", "c.yaml", "--out", "s.parquet", "--level", "1.5"),
    ("segments", "--config", "c.yaml", "--segment-by", "segment", "--level", "0"),
    ("generate", "--out", "g", "--customers", "many"),
    ("train",),
    ("no-such-command",),
])
def test_bad_values_and_usage_are_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    _one_error_line(run_cli(*args, cwd=tmp_path))


@pytest.mark.parametrize("command", ["explain", "report", "segments", "feedback", "survey-plan", "simulate"])
def test_one_segment_option_old_spellings_hidden(tmp_path: Path, command: str) -> None:
    done = run_cli(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    options = set(re.findall(r"(--[a-z][a-z-]*)", done.stdout))
    assert "--segment-by" in options
    assert not options & {"--segment", "--by"}, options


def test_old_segment_spellings_still_parse_and_must_agree(tmp_path: Path) -> None:
    # Both spellings reach the command (which then fails on the missing config, not on the option).
    for alias in ("--by", "--segment"):
        done = run_cli("segments", "--config", "missing.yaml", alias, "region", cwd=tmp_path)
        line = _one_error_line(done, "missing.yaml")
        assert "segment-by" not in line
    done = run_cli("explain", "--config", "missing.yaml", "--out", "d", "--segment-by", "region", "--segment",
                   "plan", cwd=tmp_path)
    _one_error_line(done, "--segment-by 'region'", "'plan'")


@pytest.mark.unit
def test_step_progress_draws_on_a_terminal_and_nothing_off_one() -> None:
    def run(console: Console) -> str:
        with step_progress("backtest", console) as progress:
            progress("repeat 1/2: train", 0, 2)
            progress("repeat 2/2: train", 1, 2)
            progress("done", 2, 2)
        return console.file.getvalue()  # type: ignore[attr-defined]

    terminal = run(Console(file=io.StringIO(), force_terminal=True, width=100))
    assert "backtest: done" in terminal and "2/2" in terminal
    captured = run(Console(file=io.StringIO(), force_terminal=False, width=100))
    assert captured == ""


@pytest.mark.postgres
@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql+psycopg2://postgres:s3cret-pw@127.0.0.1:5432/cx_no_such_database", 'database "cx_no_such_database"'),
    ("postgresql+psycopg2://postgres:s3cret-pw@127.0.0.1:1/test", "Connection refused"),
    ("nodb+x://u:s3cret-pw@h/db", "not a usable database URL"),
], ids=["unknown-database", "refused", "unknown-dialect"])
def test_unusable_store_url_is_one_line_without_the_password(small_company_dir: Path, tmp_path: Path, url: str,
                                                             needle: str) -> None:
    done = run_cli("store", "load", "--config", str(small_company_dir / "cxpredict.yaml"), "--store-url", url,
                   "--no-alerts", cwd=tmp_path)
    line = _one_error_line(done, needle)
    assert "s3cret-pw" not in done.stderr + done.stdout and "s3cret-pw" not in line


@pytest.mark.postgres
def test_store_load_prints_the_store_url_masked(small_company_dir: Path, tmp_path: Path,
                                                postgres_database: str) -> None:
    """A working store whose URL has a password (the local server trusts, so any password connects)."""
    url = postgres_database.replace("postgresql://postgres@", "postgresql+psycopg2://postgres:s3cret-pw@")
    done = run_cli("store", "load", "--config", str(small_company_dir / "cxpredict.yaml"), "--store-url", url,
                   "--no-alerts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert url.replace("s3cret-pw", "***") in done.stdout


def test_api_keys_that_are_not_json_are_one_line_without_a_key(small_company_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPREDICT_API_KEYS", '{"long-enough-secret-key-7q2w": ["score"],}')
    done = run_cli("store", "load", "--config", str(small_company_dir / "cxpredict.yaml"), cwd=tmp_path)
    line = _one_error_line(done, "server settings: api_keys: the value of CXPREDICT_API_KEYS is not valid JSON")
    assert "7q2w" not in line


def _non_utf8_config(folder: Path) -> tuple[str, ...]:
    config = folder / "cxpredict.yaml"
    config.write_bytes(b"# caf\xe9\n" + config.read_bytes())
    return ("score", "--config", str(config), "--out", "s.parquet")


def _non_utf8_survey(folder: Path) -> tuple[str, ...]:
    survey = folder / "survey.csv"
    lines = survey.read_bytes().split(b"\n")
    lines[3] += b"\xe9"
    survey.write_bytes(b"\n".join(lines))
    return ("train", "--config", str(folder / "cxpredict.yaml"))


def _broken_champion(folder: Path) -> tuple[str, ...]:
    from cxpredict.features.config import load_config
    from cxpredict.models.registry import CHAMPION, tracking_client

    config = load_config(folder / "cxpredict.yaml")
    client = tracking_client(config.tracking_uri)
    client.create_registered_model(config.registered_model_name)
    version = client.create_model_version(config.registered_model_name, source=str(folder / "deleted-model"))
    client.set_registered_model_alias(config.registered_model_name, CHAMPION, version.version)
    return ("score", "--config", str(folder / "cxpredict.yaml"), "--out", "s.parquet")


@pytest.mark.parametrize(("make", "needles"), [
    (_non_utf8_config, ("cxpredict.yaml: line 1: not UTF-8 text (byte 0xe9)",)),
    (_non_utf8_survey, ("survey.csv: row 3 (line 4): not UTF-8 text (byte 0xe9)",)),
    (_broken_champion, ("version 1: its model files cannot be read (", "register a working version")),
], ids=["config-not-utf8", "survey-not-utf8", "broken-champion"])
def test_user_errors_are_one_line_with_exit_2(tmp_path: Path, make, needles: tuple[str, ...]) -> None:  # noqa: ANN001
    """Once 58- and 103-line tracebacks, and a byte offset without the row: as a new user meets them."""
    from cxpredict.features.synthetic import generate_company, write_company

    write_company(generate_company(300, 0.3, seed=3), tmp_path / "company", name="tiny")
    _one_error_line(run_cli(*make(tmp_path / "company"), cwd=tmp_path), *needles)
