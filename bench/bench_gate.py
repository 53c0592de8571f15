"""The validation gate's cost in streamed scoring (issue 16): the same chunks scored, the gate timed.

Before = the check streaming ran until now (`FeaturePipeline.unreadable_values`); after = the one
gate (`features.validation.row_verdicts`: unreadable, then implausible against the training range).
Both run on the same chunks, interleaved chunk by chunk so load from other processes hits both
alike; the job (`ChunkScorer.score`: encode, gate, predict, uncertainty, the score table) is timed
on the same chunks too. The figure is the gate's added cost as a share of the job, median of chunks.

    python bench/bench_gate.py --rows 1000000 --chunk 100000 --out bench/results_gate.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--train-customers", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_gate.json"))
    args = parser.parse_args()

    from cxpredict.features.config import load_config
    from cxpredict.features.load import load_dataset
    from cxpredict.features.synthetic import generate_company, write_company
    from cxpredict.features.validation import row_verdicts
    from cxpredict.models.scoring import CustomerScorer, ScoringOptions
    from cxpredict.serving.batch.stream import ChunkScorer
    from cxpredict.training.train import fit_models

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        config = load_config(write_company(generate_company(args.train_customers, 0.2, seed=42), Path(tmp), name="g"))
        config = config.model_copy(update={"training": config.training.model_copy(update={"threads": args.threads})})
        bundle = fit_models(config, load_dataset(config), tune_trials=1, log_trials=False).bundle
        train_seconds = time.perf_counter() - started
    customers = generate_company(args.chunk, 0.03, seed=7).customers
    columns = [bundle.id_column, *bundle.pipeline.feature_names_]
    batch = pa.RecordBatch.from_pandas(customers[columns], preserve_index=False)
    scorer = ChunkScorer(CustomerScorer(bundle, ScoringOptions(), args.threads), "1")
    pipeline = bundle.pipeline
    job, before, after = [], [], []
    for i in range(args.rows // args.chunk):
        t0 = time.perf_counter()
        scores, rejects, _ = scorer.score(batch, i * args.chunk)
        job.append(time.perf_counter() - t0)
        frame = batch.to_pandas()
        X = pipeline.transform(frame)
        t0 = time.perf_counter()
        pipeline.unreadable_values(frame, X)
        before.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        verdicts = row_verdicts(pipeline, frame, X)
        after.append(time.perf_counter() - t0)
        assert scores.num_rows + rejects.num_rows == args.chunk
    added = [(a - b) / j for a, b, j in zip(after, before, job, strict=True)]
    share = [a / j for a, j in zip(after, job, strict=True)]
    result = {
        "rows": args.rows, "chunk": args.chunk, "chunks": len(job), "threads": args.threads,
        "features": len(pipeline.feature_names_), "train_seconds": round(train_seconds, 1),
        "job_seconds_total": round(sum(job), 2),
        "job_rows_per_s_median": round(args.chunk / statistics.median(job)),
        "gate_before_ms_median": round(1000 * statistics.median(before), 1),
        "gate_after_ms_median": round(1000 * statistics.median(after), 1),
        "added_cost_share_of_job_median": round(statistics.median(added), 4),
        "gate_share_of_job_median": round(statistics.median(share), 4),
        "rejected_in_last_chunk": int((verdicts.reasons != "").sum()),
        "load_average": [round(x, 2) for x in np.round(__import__("os").getloadavg(), 2)],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
