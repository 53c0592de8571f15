"""Atomic file writes and job manifests: the one way every command writes a file a reader may be watching.

Each writer puts the bytes under a hidden temporary name beside the target, fsyncs it and renames
it into place, so a reader (or a resumed job) sees either the old file or the whole new one, never
half of one; a killed writer leaves only `.NAME.tmp-PID` files, which `clean_temporaries` removes.
It lives in features/ because training (reports, driver tables) and serving (batch scoring) both
write files, and training never imports serving.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
TEMPORARY_GLOB = ".*.tmp-*"


def temporary_path(out: Path) -> Path:
    """The hidden name beside `out` that a write goes to before it is renamed into place."""
    return out.with_name(f".{out.name}.tmp-{os.getpid()}")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_atomic(out: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary name beside `out`, fsync it, then rename it to `out`.

    Args:
        out: the final path (its folder is created if needed).
        write: writes the whole file to the path it is given.
    Returns:
        `out`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def write_bytes_atomic(data: bytes, out: Path) -> Path:
    return write_atomic(out, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(text: str, out: Path) -> Path:
    return write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(value: Any, out: Path, indent: int | None = 1) -> Path:
    return write_text_atomic(json.dumps(value, indent=indent, default=float), out)


def write_parquet_atomic(frame: pd.DataFrame, out: Path) -> Path:
    return write_atomic(out, lambda tmp: frame.to_parquet(tmp, index=False))


def write_table_atomic(table: pa.Table, out: Path) -> Path:
    return write_atomic(out, lambda tmp: pq.write_table(table, tmp))


def write_csv_atomic(frame: pd.DataFrame, out: Path) -> Path:
    return write_atomic(out, lambda tmp: frame.to_csv(tmp, index=False))


def clean_temporaries(*folders: Path) -> None:
    """Remove half-written files a killed run left behind (they never carry a final name)."""
    for folder in folders:
        for tmp in Path(folder).glob(TEMPORARY_GLOB):
            tmp.unlink(missing_ok=True)


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The job manifest of an output folder, or None when the folder has none."""
    path = Path(out_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(manifest: dict[str, Any], out_dir: Path) -> Path:
    return write_json_atomic(manifest, Path(out_dir) / MANIFEST)
