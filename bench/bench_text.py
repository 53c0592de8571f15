"""Benchmark: text coding throughput (texts/s) per language, beside plain scoring (customers/s) in the same run.

The coder (features/text_coder.py: jieba + TF-IDF word and character n-grams, one logistic
regression per code, sentiment) is fitted on a synthetic company's survey answers; then
`--texts` short generated texts per language (ticket-like, 5-40 characters) are coded in chunks
of `--chunk` (each chunk a repeat; memory is one chunk), and the company's bundle (fit_models,
no MLflow) scores `--chunk` customers per repeat, interleaved with the coding so that load from
other processes hits both alike. Reports medians over the chunks and peak RSS.

    python bench/bench_text.py --texts 1000000 --chunk 100000 --out bench/results_text.json

Not a test: on 2 cores it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import generate_company, write_company
from cxpredict.features.synthetic_text import DEMO_CODEFRAME, generate_texts, write_company_texts
from cxpredict.features.text_coder import TextCoder, language_of
from cxpredict.features.text_features import with_text_features
from cxpredict.features.texts import parse_codeframe
from cxpredict.training.train import fit_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1_000_000, help="texts per language")
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument("--survey-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results_text.json"))
    args = parser.parse_args()

    company = generate_company(args.train_customers, args.survey_rate, args.seed)
    texts = generate_texts(company, args.seed)
    survey = company.survey
    labels = pd.DataFrame({c: survey["causes"].fillna("").str.contains(c).astype(int)
                           for c in ["network", "price", "support", "billing", "coverage"]})
    codeframe = parse_codeframe(DEMO_CODEFRAME, "demo")
    coder = TextCoder(codeframe, args.seed).fit(texts.survey_text, labels, (survey["nps"] <= 6).astype(int).to_numpy())
    with tempfile.TemporaryDirectory() as tmp:
        write_company(company, Path(tmp), name="bench")
        write_company_texts(company, Path(tmp), args.seed)
        config = load_config(Path(tmp) / "cxpredict.yaml")
        dataset = with_text_features(config, load_dataset(config))
        bundle = fit_models(config, dataset, tune_trials=2, log_trials=False).bundle
    customers = dataset.customers

    pool = texts.texts["text"].astype(str)
    pool = pool[pool.str.len().between(5, 40)]
    by_language = {lang: pool[language_of(pool) == lang].to_numpy() for lang in ("en", "zh")}
    rng = np.random.default_rng(args.seed)
    rates: dict[str, list[float]] = {"en": [], "zh": [], "scoring": []}
    for _ in range(args.texts // args.chunk):
        for lang, values in by_language.items():
            chunk = pd.Series(rng.choice(values, args.chunk))
            start = time.perf_counter()
            coder.code(chunk)
            rates[lang].append(args.chunk / (time.perf_counter() - start))
        rows = customers.sample(args.chunk, replace=True, random_state=int(rng.integers(1 << 30)))
        start = time.perf_counter()
        bundle.predict(rows)
        rates["scoring"].append(args.chunk / (time.perf_counter() - start))
    medians = {k: float(np.median(v)) for k, v in rates.items()}
    result = {
        "texts_per_language": args.texts, "chunk": args.chunk, "repeats": len(rates["en"]),
        "median_texts_per_s": {"en": medians["en"], "zh": medians["zh"]},
        "median_scoring_customers_per_s": medians["scoring"],
        "ratio_scoring_to_coding": {lang: medians["scoring"] / medians[lang] for lang in ("en", "zh")},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": os.getloadavg(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    args.out.write_text(json.dumps(result, indent=1))
    print("| what | median per second | chunks |\n|---|---|---|")
    for lang in ("en", "zh"):
        print(f"| coding, {lang} texts | {medians[lang]:,.0f} texts | {len(rates[lang])} x {args.chunk:,} |")
    print(f"| plain scoring (bundle.predict) | {medians['scoring']:,.0f} customers | {len(rates['scoring'])} "
          f"x {args.chunk:,} |")
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB, load average {result['load_average']}")


if __name__ == "__main__":
    main()
