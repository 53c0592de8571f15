"""Silent-customer quality: cxpredict (single tuned LightGBM and the ensemble) beside issue 15's baselines.

Not a test: run by hand and copy the printed table into bench/README.md. Each cell is the
backtest (training/backtest.py): the respondents play the whole base, `rate` of them are kept
as surveyed (random or biased selection), the rest are the silent customers every model is
judged on. Figures: accuracy, AUC of P(bottom band), log loss and population error (points of
the index), mean ± standard deviation over repeats (and generator seeds).

    python bench/quality.py                                   # the full grid (hours on 2 cores)
    python bench/quality.py --datasets telco generator --rates 0.03 --selections biased random \\
        --repeats 2 --seeds 1 --tune-trials 5                 # the reduced grid of bench/README.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("accuracy", "bottom_auc", "log_loss", "population_error")
GENERATOR_CUSTOMERS = 20_000  # half surveyed: 10,000 respondents, so 3 % keeps 300 (the scale)
GENERATOR_SURVEY_RATE = 0.5


def dataset_configs(names: list[str], seeds: list[int], work: Path) -> list[tuple[str, object]]:
    """(label, config) of every dataset: the Telco sample and the generator at each seed."""
    from cxpredict.features.config import load_config
    from cxpredict.features.synthetic import generate_company, write_company

    out = []
    if "telco" in names:
        out.append(("telco", load_config(ROOT / "data" / "telco" / "cxpredict.yaml")))
    if "generator" in names:
        for seed in seeds:
            folder = work / f"generator-{seed}"
            write_company(generate_company(GENERATOR_CUSTOMERS, GENERATOR_SURVEY_RATE, seed), folder, name=f"gen{seed}")
            out.append((f"generator seed {seed}", load_config(folder / "cxpredict.yaml")))
    return out


def with_training(config, **update):
    return config.model_copy(update={"training": config.training.model_copy(update=update)})


def cell_rows(config, rate: float, selection: str, repeats: int, tune_trials: int) -> list[dict[str, float]]:
    """Per repeat and model: the silent figures (cxpredict single, cxpredict ensemble, the baselines)."""
    from cxpredict.features.load import load_dataset
    from cxpredict.training.backtest import backtest
    from cxpredict.training.baselines import BASELINES

    dataset = load_dataset(config)
    rows = []
    for label, ensemble in (("cxpredict single", False), ("cxpredict ensemble", True)):
        report = backtest(with_training(config, ensemble=ensemble), dataset, rate, repeats=repeats, seed=0,
                          selection=selection, tune_trials=tune_trials, log_to_mlflow=False)
        for r, m in enumerate(report.per_repeat):
            rows.append({"model": label, "repeat": r, **{f: m[f"silent_{f}"] for f in FIGURES}})
            if ensemble:
                continue  # the baselines saw the same kept rows in both runs
            for name in BASELINES:
                rows.append({"model": name, "repeat": r, **{f: m[f"baseline_{name}_{f}"] for f in FIGURES}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["telco", "generator"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.03, 0.10, 0.30])
    parser.add_argument("--selections", nargs="+", default=["biased", "random"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tune-trials", type=int, default=20)
    parser.add_argument("--small-sample-respondents", type=int, default=2000,
                        help="training.small_sample_respondents of both cxpredict variants (0: the wide search)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_quality.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cxquality") as work:
        for label, config in dataset_configs(args.datasets, args.seeds, Path(work)):
            config = with_training(config, small_sample_respondents=args.small_sample_respondents)
            dataset_label = "generator" if label.startswith("generator") else label
            for rate in args.rates:
                for selection in args.selections:
                    for row in cell_rows(config, rate, selection, args.repeats, args.tune_trials):
                        rows.append({"dataset": dataset_label, "source": label, "rate": rate,
                                     "selection": selection, **row})
                    print(f"done {label} {rate:.0%} {selection} ({time.perf_counter() - started:.0f}s)",
                          file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["dataset", "rate", "selection", "model"], sort=False)[list(FIGURES)].agg(["mean", "std"])
    print(f"silent customers, mean ± std over repeats{' and seeds' if len(args.seeds) > 1 else ''} "
          f"({args.repeats} repeats, {args.tune_trials} trials, {time.perf_counter() - started:.0f}s)")
    print("| dataset | rate | selection | model | accuracy | AUC (bottom band) | log loss | population error |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, rate, selection, model), values in summary.iterrows():
        cells = [f"{values[(f, 'mean')]:.3f} ± {np.nan_to_num(values[(f, 'std')]):.3f}" for f in FIGURES]
        print(f"| {dataset} | {rate:.0%} | {selection} | {model} | " + " | ".join(cells) + " |")
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
