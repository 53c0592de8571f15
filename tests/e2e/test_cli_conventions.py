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
