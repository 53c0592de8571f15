"""The text analyst view (issue 18): codes by frequency and score band, verbatims, sentiment trend, rising codes.

One self-contained HTML page rendered with jinja2 (autoescaped: verbatims are customer text),
logged to MLflow with the codeframe and the coder's figures as a `text_report` run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment

from cxpredict.features.config import CxConfig
from cxpredict.features.io import write_text_atomic
from cxpredict.features.text_coder import ASSIGNED
from cxpredict.features.text_features import CodingResult
from cxpredict.models.registry import (
    KIND_TEXT_REPORT,
    TAG_KIND,
    TEXT_CODEFRAME_ARTIFACT,
    TEXT_REPORT_ARTIFACT,
    TEXT_SUMMARY_ARTIFACT,
)
from cxpredict.training.registry import configure_mlflow

VERBATIMS_PER_CODE = 3
RISING_RATIO = 1.5  # a code rose when its recent share is at least this times its earlier share
RISING_MIN_TEXTS = 5  # ...and at least this many recent texts carry it


def mask_id(customer_id: str) -> str:
    """An id an analyst can tell apart but not look up: all but the last two characters hidden."""
    text = str(customer_id)
    return "*" * max(len(text) - 2, 1) + text[-2:]


@dataclass(frozen=True)
class TextSummary:
    """The figures of the page (also logged as JSON)."""

    frequencies: pd.DataFrame  # code, name, texts, share
    by_band: pd.DataFrame | None  # code x band share of survey answers
    verbatims: dict[str, list[dict[str, str]]]
    trend: pd.DataFrame  # week, texts, mean sentiment
    rising: pd.DataFrame  # code, recent share, earlier share, ratio
    languages: dict[str, int]
    metrics: dict[str, float]


def summarise_texts(config: CxConfig, result: CodingResult) -> TextSummary:
    """Frequencies, band mix, verbatims, weekly sentiment and rising codes of coded texts."""
    coded, codeframe = result.coded, result.codeframe
    present = coded["text"].astype(str).str.strip().ne("")
    rows = coded[present].reset_index(drop=True)
    flags = pd.DataFrame({c: rows[f"p_{c}"] >= ASSIGNED for c in codeframe.ids})
    frequencies = pd.DataFrame({
        "code_id": codeframe.ids,
        "name": [codeframe.name_of(c) for c in codeframe.ids],
        "texts": [int(flags[c].sum()) for c in codeframe.ids],
        "share": [float(flags[c].mean()) if len(flags) else 0.0 for c in codeframe.ids],
    }).sort_values("texts", ascending=False, kind="stable").reset_index(drop=True)
    by_band = None
    if "score" in rows and rows["score"].notna().any():
        survey_rows = rows["score"].notna().to_numpy()
        bands = rows.loc[survey_rows, "score"].astype(int).map(config.score.band_of)
        by_band = flags[survey_rows].groupby(bands.to_numpy()).mean().T.reindex(
            columns=config.score.band_names).fillna(0.0)
    verbatims: dict[str, list[dict[str, str]]] = {}
    for code in codeframe.ids:
        top = (rows[flags[code]].sort_values(f"p_{code}", ascending=False, kind="stable")
               .drop_duplicates("text").head(VERBATIMS_PER_CODE))  # different wordings, not one repeated
        verbatims[code] = [{"id": mask_id(r[config.id_column]), "channel": str(r["channel"]),
                            "text": str(r["text"]), "evidence": str(r["evidence"]),
                            "p": f"{r[f'p_{code}']:.2f}"} for _, r in top.iterrows()]
    dates = pd.to_datetime(rows["date"], errors="coerce")
    week = dates.dt.to_period("W").dt.start_time
    trend = (pd.DataFrame({"week": week, "sentiment": rows["sentiment"]}).dropna(subset=["week"])
             .groupby("week").agg(texts=("sentiment", "size"), sentiment=("sentiment", "mean")).reset_index())
    rising = pd.DataFrame(columns=["code_id", "recent_share", "earlier_share", "ratio"])
    if dates.notna().any():
        recent = (dates.max() - dates).dt.days <= config.text.recent_days
        earlier = ~recent & dates.notna()
        records = []
        for code in codeframe.ids:
            now = float(flags.loc[recent.to_numpy(), code].mean()) if recent.any() else 0.0
            before = float(flags.loc[earlier.to_numpy(), code].mean()) if earlier.any() else 0.0
            count = int(flags.loc[recent.to_numpy(), code].sum())
            ratio = now / before if before > 0 else (np.inf if now > 0 else 0.0)
            if ratio >= RISING_RATIO and count >= RISING_MIN_TEXTS:
                records.append({"code_id": code, "recent_share": now, "earlier_share": before, "ratio": ratio})
        if records:
            rising = pd.DataFrame(records).sort_values("ratio", ascending=False).reset_index(drop=True)
    languages = {str(k): int(v) for k, v in coded["language"].value_counts().items()}
    return TextSummary(frequencies, by_band, verbatims, trend, rising, languages, dict(result.metrics))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Texts: {{ name }}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.bar{background:#4a7bd0;height:.8em;display:inline-block}.muted{color:#777}</style></head><body>
<h1>Voice of the customer: {{ name }}</h1>
<p>{{ n_texts }} texts coded into {{ codes|length }} codes
({% for k, v in languages.items() %}{{ k }}: {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}).
{% if macro_auc is not none %}Held-out macro AUC of the coder against the respondents' coded causes:
{{ '%.3f'|format(macro_auc) }}.{% endif %}
{% if sentiment_auc is not none %}Sentiment separates bottom-band answers with AUC
{{ '%.3f'|format(sentiment_auc) }}.{% endif %}</p>
<h2 id="frequency">Codes by frequency</h2>
<table><tr><th>code</th><th>texts</th><th>share</th><th></th></tr>
{% for r in frequencies %}<tr><td>{{ r.name }}</td><td>{{ r.texts }}</td>
<td>{{ '%.1f'|format(100 * r.share) }} %</td>
<td><span class="bar" style="width:{{ (300 * r.share)|round|int }}px"></span></td></tr>{% endfor %}</table>
{% if by_band %}<h2 id="bands">Codes by score band (survey answers)</h2>
<table><tr><th>code</th>{% for b in bands %}<th>{{ b }}</th>{% endfor %}</tr>
{% for code, shares in by_band %}<tr><td>{{ code }}</td>
{% for s in shares %}<td>{{ '%.1f'|format(100 * s) }} %</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<h2 id="rising">Codes that rose in the last {{ recent_days }} days</h2>
{% if rising %}<table><tr><th>code</th><th>recent share</th><th>earlier share</th></tr>
{% for r in rising %}<tr><td>{{ r.code_id }}</td><td>{{ '%.1f'|format(100 * r.recent_share) }} %</td>
<td>{{ '%.1f'|format(100 * r.earlier_share) }} %</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No code rose by {{ rising_ratio }}x or more.</p>{% endif %}
<h2 id="trend">Sentiment by week</h2>
<table><tr><th>week</th><th>texts</th><th>mean sentiment (-1..1)</th></tr>
{% for r in trend %}<tr><td>{{ r.week }}</td><td>{{ r.texts }}</td><td>{{ r.sentiment }}</td></tr>{% endfor %}</table>
<h2 id="verbatims">Example verbatims (ids masked)</h2>
{% for code, items in verbatims %}<h3>{{ code }}</h3>{% if items %}<ul>{% for v in items %}
<li><b>{{ v.id }}</b> ({{ v.channel }}, p={{ v.p }}): “{{ v.text }}”
<span class="muted">evidence: {{ v.evidence }}</span></li>{% endfor %}</ul>
{% else %}<p class="muted">No text carries this code.</p>{% endif %}{% endfor %}
</body></html>"""


def render_text_report(config: CxConfig, result: CodingResult, summary: TextSummary) -> str:
    """The page's HTML (autoescaped)."""
    names = {c: result.codeframe.name_of(c) for c in result.codeframe.ids}
    by_band = None
    if summary.by_band is not None:
        by_band = [(names[c], [float(v) for v in summary.by_band.loc[c]]) for c in summary.by_band.index]
    template = Environment(autoescape=True).from_string(_PAGE)
    return template.render(
        name=config.name, n_texts=len(result.coded), codes=result.codeframe.ids, languages=summary.languages,
        macro_auc=summary.metrics.get("text_code_auc_macro"), sentiment_auc=summary.metrics.get("text_sentiment_auc"),
        frequencies=summary.frequencies.to_dict("records"), by_band=by_band, bands=config.score.band_names,
        rising=summary.rising.to_dict("records"), rising_ratio=RISING_RATIO, recent_days=config.text.recent_days,
        trend=[{"week": str(r["week"])[:10], "texts": r["texts"],
                "sentiment": "" if pd.isna(r["sentiment"]) else f"{r['sentiment']:.2f}"}
               for r in summary.trend.to_dict("records")],
        verbatims=[(names[c], v) for c, v in summary.verbatims.items()],
    )


def _summary_json(summary: TextSummary) -> dict[str, Any]:
    return {
        "frequencies": summary.frequencies.to_dict("records"),
        "rising": summary.rising.to_dict("records"),
        "languages": summary.languages,
        "metrics": summary.metrics,
    }


def text_report(config: CxConfig, result: CodingResult, out: Path) -> tuple[Path, str]:
    """Write the page and log it, the codeframe and the coder's figures as one MLflow run.

    Returns:
        The page's path and the run id.
    """
    summary = summarise_texts(config, result)
    page = render_text_report(config, result, summary)
    out = Path(out)
    write_text_atomic(page, out)
    configure_mlflow(config)
    with mlflow.start_run(run_name=f"text-report-{config.name}", tags={TAG_KIND: KIND_TEXT_REPORT}) as run:
        mlflow.log_metrics({k: float(v) for k, v in summary.metrics.items() if np.isfinite(v)})
        mlflow.log_text(page, TEXT_REPORT_ARTIFACT)
        codeframe = [{"id": c.id, "name": c.name, "keywords": list(c.keywords)} for c in result.codeframe.codes]
        mlflow.log_text(yaml.safe_dump(codeframe, allow_unicode=True, sort_keys=False), TEXT_CODEFRAME_ARTIFACT)
        mlflow.log_dict(json.loads(json.dumps(_summary_json(summary), default=str)), TEXT_SUMMARY_ARTIFACT)
    return out, run.info.run_id
