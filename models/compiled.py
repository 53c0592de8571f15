"""Compiled trees: each LightGBM booster's prediction as native code (issue 20).

Hand-written glue only: Treelite (its LightGBM frontend) reads the model and tl2cgen generates C
and compiles it with gcc into a shared library; this module decides *when* to compile, caches the
library, verifies it by hash before loading, and checks it against `Booster.predict` (1e-9) before
it is ever used. Anything that fails (no compiler, a mismatch, a tampered file) falls back to the
booster with a warning, so scoring never depends on compilation succeeding.

When: compiling a 300-tree model takes a few seconds on this 2-core machine (about a minute as one C
file; split over PARALLEL_COMP files, 2.8 s), and a bundle has ~12 boosters, so nothing is compiled at
load time. The first `predict_raw` of a booster with at least
`min_rows` rows (a batch scoring chunk, not an API request) starts its compile on one background
thread and keeps predicting with the booster; the chunks after it is ready use the library (a job
that ends first waits for the compile in progress, not for the queued ones: the cache fills over
the first few jobs). A
library already in the cache loads synchronously (milliseconds). Compilation is off unless a
command turns it on (`configure`: `score` does, from `scoring.compile`; `serve` does not: its requests
are far below `min_rows`), so training,
backtests and the tests never pay for it; `CXPREDICT_COMPILE=0` forces it off everywhere.

Cache: `<cache>/<key>/model.so` + `model.json`, key = SHA-256 of the model text, the compiler's
version, the CPU target (machine, CPU flags) and the library versions; `model.json` records the
library's SHA-256, checked before every load.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TOLERANCE = 1e-9  # compiled raw margins must equal Booster.predict to this on the check rows
CHECK_ROWS = 2000  # rows of the triggering batch used for the compile-time check
# gcc flags: -O2 with -march=native (the cache key records the CPU, so a library never moves machines).
COMPILER_FLAGS = ["-O2", "-march=native", "-fPIC", "-std=c11"]
PARALLEL_COMP = 4  # tl2cgen splits the trees over this many C files, compiled in parallel by gcc
_ATTR = "_cxpredict_compiled"


@dataclass
class Settings:
    enabled: bool = False
    cache_dir: Path | None = None
    min_rows: int = 50_000  # smaller calls (API requests, tests) never trigger a compile
    background: bool = True  # False: compile in the calling thread (tests, bench)


_settings = Settings()
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def configure(enabled: bool, cache_dir: Path | None, min_rows: int | None = None,
              background: bool | None = None) -> Settings:
    """Turn compilation on or off for this process; `CXPREDICT_COMPILE=0` always wins (tests)."""
    if os.environ.get("CXPREDICT_COMPILE", "").strip().lower() in {"0", "false", "no", "off"}:
        enabled = False
    _settings.enabled = enabled
    _settings.cache_dir = Path(cache_dir) if cache_dir is not None else None
    if min_rows is not None:
        _settings.min_rows = min_rows
    if background is not None:
        _settings.background = background
    return _settings


DEFAULT_CACHE = ".cxpredict-compiled"  # beside the config: one cache per project folder and machine


def configure_from(cfg: Any, enabled: bool = True) -> Settings:
    """Settings from a CxConfig: on when both `scoring.compile` and the command (`--compile`) say so."""
    scoring = cfg.scoring
    return configure(enabled and scoring.compile, cfg.resolve(scoring.compile_cache or DEFAULT_CACHE))


@dataclass
class CompiledModel:
    """A verified, loaded library for one booster."""

    path: Path
    key: str
    compile_seconds: float | None  # None: loaded from the cache
    max_abs_diff: float
    _predictors: dict[int, Any] = field(default_factory=dict, repr=False)
    _shape: tuple[int, ...] = ()

    def predict(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        import tl2cgen

        n = threads or os.cpu_count() or 1
        predictor = self._predictors.get(n)
        if predictor is None:
            predictor = self._predictors[n] = tl2cgen.Predictor(str(self.path), nthread=n)
        X = np.ascontiguousarray(X, dtype=np.float64)  # LightGBM thresholds are doubles: exactness
        out = predictor.predict(tl2cgen.DMatrix(X, dtype="float64"), pred_margin=True)
        out = np.asarray(out, dtype=np.float64).reshape(len(X), -1)
        return out[:, 0] if out.shape[1] == 1 else out


@dataclass
class _State:
    """Per-booster state, stored on the booster object (one per loaded model version)."""

    model: CompiledModel | None = None
    pending: bool = False
    failed: bool = False


@lru_cache(maxsize=1)
def _target() -> str:
    """Compiler version + CPU target + library versions: what a compiled library depends on."""
    import tl2cgen
    import treelite

    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=30,
                             check=True).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        gcc = "no-gcc"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line + "\n"
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return "\n".join([gcc, platform.machine(), hashlib.sha256(flags.encode()).hexdigest(),
                      f"treelite {treelite.__version__}", f"tl2cgen {tl2cgen.__version__}",
                      " ".join(COMPILER_FLAGS)])


def cache_key(model_text: str) -> str:
    return hashlib.sha256(model_text.encode() + b"\0" + _target().encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(compiled: CompiledModel, booster: Any, X: np.ndarray) -> float:
    """Largest |compiled − Booster.predict| over the check rows (raises if shapes differ)."""
    expected = np.asarray(booster.predict(X, raw_score=True), dtype=np.float64)
    got = compiled.predict(X, 1)
    if got.shape != expected.shape:
        raise ValueError(f"compiled output shape {got.shape} != booster {expected.shape}")
    return float(np.max(np.abs(got - expected))) if got.size else 0.0


def load_cached(booster: Any, cache_dir: Path, X_check: np.ndarray | None = None) -> CompiledModel | None:
    """The verified cached library for this booster, or None (absent, or refused with a warning)."""
    key = cache_key(booster.model_to_string())
    folder = cache_dir / key
    meta_path, lib = folder / "model.json", folder / "model.so"
    if not (meta_path.is_file() and lib.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        recorded = meta["sha256"]
    except (OSError, ValueError, KeyError):
        log.warning("compiled model %s: unreadable model.json; using the booster", folder)
        return None
    actual = _sha256(lib)
    if actual != recorded:
        log.warning("compiled model %s: library SHA-256 %s != recorded %s (modified?); refused, "
                    "using the booster (delete the folder to recompile)", folder, actual[:12], recorded[:12])
        return None
    compiled = CompiledModel(lib, key, None, float(meta.get("max_abs_diff", 0.0)))
    if X_check is not None:  # cheap re-check on the caller's rows: a cached library is still proven
        diff = _check(compiled, booster, X_check[:200])
        if not diff <= TOLERANCE:
            log.warning("compiled model %s differs from the booster by %.3g; refused", folder, diff)
            return None
    return compiled


def compile_booster(booster: Any, cache_dir: Path, X_check: np.ndarray,
                    threads: int | None = None) -> CompiledModel | None:
    """Compile (or load from the cache) one booster, checked against `Booster.predict` on `X_check`.

    Returns None, with a warning, when compiling fails or the result is not equal to 1e-9.
    """
    cached = load_cached(booster, cache_dir, X_check)
    if cached is not None:
        return cached
    start = time.perf_counter()
    model_text = booster.model_to_string()
    key = cache_key(model_text)
    folder = cache_dir / key
    try:
        import tl2cgen
        import treelite

        if shutil.which("gcc") is None:
            raise RuntimeError("gcc not found on PATH")
        model = treelite.frontend.from_lightgbm(booster)
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
            lib = Path(tmp) / "model.so"
            params: dict[str, Any] = {"parallel_comp": PARALLEL_COMP}
            check = np.ascontiguousarray(X_check[:CHECK_ROWS], dtype=np.float64)
            if len(check):  # branch annotation: gcc lays out the likely side of each split first
                annotation = Path(tmp) / "annotation.json"
                tl2cgen.annotate_branch(model, tl2cgen.DMatrix(check, dtype="float64"), path=str(annotation),
                                        nthread=threads or 1, verbose=False)
                params["annotate_in"] = str(annotation)
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(lib), params=params,
                               options=COMPILER_FLAGS, nthread=threads or os.cpu_count() or 1, verbose=False)
            compiled = CompiledModel(lib, key, None, 0.0)
            diff = _check(compiled, booster, check)
            if not diff <= TOLERANCE:
                log.warning("compiled booster differs from Booster.predict by %.3g (> %g); using the booster",
                            diff, TOLERANCE)
                return None
            seconds = time.perf_counter() - start
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / "model.so"
            os.replace(lib, final)
            meta = {"sha256": _sha256(final), "max_abs_diff": diff, "compile_seconds": round(seconds, 2),
                    "check_rows": len(check), "target": _target(), "trees": booster.num_trees()}
            (folder / "model.json.tmp").write_text(json.dumps(meta, indent=1))
            os.replace(folder / "model.json.tmp", folder / "model.json")
    except Exception as err:  # noqa: BLE001 - any failure means: keep the booster, say why
        log.warning("compiling a booster failed (%s: %s); using the booster", type(err).__name__, err)
        return None
    log.info("compiled a %d-tree booster in %.1fs (max diff %.2g) -> %s", booster.num_trees(), seconds, diff, final)
    return CompiledModel(final, key, seconds, diff)


def _state(booster: Any) -> _State:
    state = getattr(booster, _ATTR, None)
    if state is None:
        state = _State()
        setattr(booster, _ATTR, state)
    return state


def _run_compile(booster: Any, state: _State, cache_dir: Path, X_check: np.ndarray) -> None:
    try:
        model = compile_booster(booster, cache_dir, X_check, threads=1 if _settings.background else None)
    finally:
        state.pending = False
    state.model, state.failed = model, model is None


def predict(booster: Any, X: np.ndarray, threads: int | None = None) -> np.ndarray | None:
    """Compiled raw margins for this booster when a verified library is ready; else None.

    Called by models/estimators.py:predict_raw for every booster; it may start the compile.
    """
    if not _settings.enabled or _settings.cache_dir is None:
        return None
    state = _state(booster)
    if state.model is not None:
        return state.model.predict(X, threads)
    if state.failed or state.pending or len(X) < _settings.min_rows:
        return None
    with _lock:
        if state.pending or state.model is not None or state.failed:
            return state.model.predict(X, threads) if state.model is not None else None
        cache_dir = _settings.cache_dir
        X_check = np.array(X[:CHECK_ROWS], dtype=np.float64)  # copied: the caller may reuse its buffer
        cached = load_cached(booster, cache_dir, X_check)
        if cached is not None:
            state.model = cached
            return cached.predict(X, threads)
        state.pending = True
        if not _settings.background:
            _run_compile(booster, state, cache_dir, X_check)
            return state.model.predict(X, threads) if state.model is not None else None
        global _executor
        if _executor is None:  # one compile at a time: the machine's cores also score
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxpredict-compile")
            # concurrent.futures joins its workers from threading's exit hooks (run in reverse
            # order, before atexit): register there so the queue is dropped before that join.
            getattr(threading, "_register_atexit", atexit.register)(_drop_queued)
        _executor.submit(_run_compile, booster, state, cache_dir, X_check)
    return None


def _drop_queued() -> None:
    """At exit, the job waits for the compile in progress (it fills the cache) but not the queued ones.

    Registered after concurrent.futures' own exit hook, so it runs first.
    """
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)


def wait() -> None:
    """Block until every compile started so far has finished (bench, tests)."""
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None
