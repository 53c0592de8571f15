"""The model bundle as data files (no pickle): LightGBM model text, JSON and Parquet, with a SHA-256 manifest.

Why not pickle: unpickling runs whatever code the file names, so whoever could register a model
version could run code in the API and the CLI. Here a bundle folder holds only data:

    bundle.json       the object tree: dataclasses field by field, fitted objects attribute by
                      attribute, numbers, text, lists, dicts, small arrays inline
    boosters/*.txt    every LightGBM booster in LightGBM's own text format
    boosters/*.cbm    every CatBoost model (ensemble members) in CatBoost's own model format
    tables/*.parquet  DataFrames (respondents' out-of-fold table)
    arrays/*.parquet  numeric arrays above `INLINE_ARRAY_MAX` values (conformal scores and weights)
    manifest.json     the SHA-256 of every other file; its own SHA-256 is what the training run records

Reading names no code: a `$dataclass`/`$object` node may only name a class of cxpredict's own
feature and model packages, rebuilt from its fields (the dataclass's `__init__`) or attributes.
Serialisation is generic, so a field added to `ScoringBundle`, `UpliftResult` or any other
dataclass round-trips without touching this module, as long as its values are of the kinds above.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cxpredict.features.io import write_atomic, write_bytes_atomic, write_table_atomic, write_text_atomic

FORMAT = "cxpredict-bundle"
FORMAT_VERSION = 1
TREE_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
INLINE_ARRAY_MAX = 256  # values; larger arrays go to Parquet so bundle.json stays readable
# Packages whose classes a bundle may name: the code the logged model ships (features/ and models/).
CLASS_PACKAGES = ("cxpredict.features.", "cxpredict.models.")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class BundleError(Exception):
    """A stored bundle cannot be written or read (not a bundle, an unknown format, a value kind we do not store)."""


class BundleIntegrityError(BundleError):
    """A bundle file is missing, added or differs from the SHA-256 recorded when it was written: refused."""


@dataclasses.dataclass(frozen=True)
class BundleFiles:
    """A written bundle folder and the SHA-256 of its manifest (the digest runs record)."""

    folder: Path
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(files: dict[str, Path]) -> str:
    """One SHA-256 over named files (name -> path): of the JSON list of their names and digests."""
    listing = {name: sha256_file(path) for name, path in sorted(files.items())}
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest()


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _bundle_class(name: str, where: str) -> type:
    """The class a node names, imported only from cxpredict's feature and model packages."""
    module, _, qualname = name.rpartition(".")
    if not module.startswith(CLASS_PACKAGES) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        raise BundleError(f"{where}: class {name!r} is not one of cxpredict's model classes")
    try:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as err:
        raise BundleError(f"{where}: class {name!r} does not exist in this cxpredict version") from err
    if not isinstance(cls, type):
        raise BundleError(f"{where}: {name!r} is not a class")
    return cls


class _Writer:
    """Encodes an object tree into JSON-ready values, writing boosters, tables and big arrays as files."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: list[str] = []

    def _file(self, kind: str, where: str, suffix: str) -> tuple[str, Path]:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", where).strip("._") or "value"
        name, n = f"{kind}/{stem}{suffix}", 1
        while name in self.files:
            n += 1
            name = f"{kind}/{stem}-{n}{suffix}"
        self.files.append(name)
        return name, self.folder / name

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            number = _float(float(value))
            return number if isinstance(number, float) else {"$float": number}  # text "NaN" stays text
        if isinstance(value, list):
            return [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"$dict": {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}}
            return {"$items": [[self.encode(k, f"{where}.key"), self.encode(v, f"{where}.{k}")]
                               for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, pd.DataFrame):
            name, path = self._file("tables", where, ".parquet")
            write_atomic(path, value.to_parquet)  # with its index
            return {"$dataframe": name}
        if isinstance(value, lgb.Booster):
            name, path = self._file("boosters", where, ".txt")
            write_text_atomic(value.model_to_string(), path)
            return {"$booster": name}
        if _class_name(type(value)).startswith("catboost."):
            name, path = self._file("boosters", where, ".cbm")
            write_atomic(path, lambda target: value.save_model(str(target), format="cbm"))
            return {"$catboost": name}
        cls = type(value)
        if not _class_name(cls).startswith(CLASS_PACKAGES):
            raise BundleError(f"cannot store {where}: a {_class_name(cls)} is not a bundle value "
                              "(numbers, text, lists, dicts, arrays, DataFrames, LightGBM boosters, cxpredict classes)")
        if dataclasses.is_dataclass(value):
            return {"$dataclass": _class_name(cls), "fields": {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}}
        return {"$object": _class_name(cls), "attributes": {
            k: self.encode(v, f"{where}.{k}") for k, v in vars(value).items()}}

    def _array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        if value.dtype.kind not in "biuf":
            raise BundleError(f"cannot store {where}: only numeric and boolean arrays are bundle values, "
                              f"not {value.dtype}")
        head = {"dtype": value.dtype.str, "shape": list(value.shape)}
        if value.size <= INLINE_ARRAY_MAX:
            flat = value.ravel().tolist()
            return {"$ndarray": {**head, "data": [_float(v) for v in flat] if value.dtype.kind == "f" else flat}}
        name, path = self._file("arrays", where, ".parquet")
        write_table_atomic(pa.table({"value": value.ravel()}), path)
        return {"$ndarray": {**head, "file": name}}


def _float(value: float) -> float | str:
    """JSON has no NaN or infinities: they are written as the strings JavaScript would print."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class _Reader:
    """Decodes bundle.json back into objects; every file it opens was checked against the manifest."""

    def __init__(self, folder: Path, files: set[str]):
        self.folder = folder
        self.files = files

    def _path(self, name: Any, where: str) -> Path:
        if name not in self.files:
            raise BundleIntegrityError(f"{self.folder}: {where} names {name!r}, which the manifest does not list")
        return self.folder / name

    def decode(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [self.decode(v, f"{where}.{i}") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if "$float" in node:
            return _NON_FINITE[node["$float"]]
        if "$tuple" in node:
            return tuple(self.decode(v, f"{where}.{i}") for i, v in enumerate(node["$tuple"]))
        if "$dict" in node:
            return {k: self.decode(v, f"{where}.{k}") for k, v in node["$dict"].items()}
        if "$items" in node:
            return {_hashable(self.decode(k, f"{where}.key")): self.decode(v, f"{where}.{i}")
                    for i, (k, v) in enumerate(node["$items"])}
        if "$ndarray" in node:
            spec = node["$ndarray"]
            dtype = np.dtype(spec["dtype"])
            if "file" in spec:
                flat = pq.read_table(self._path(spec["file"], where)).column("value").to_numpy()
            else:
                flat = np.array([_NON_FINITE.get(v, v) if isinstance(v, str) else v for v in spec["data"]])
            return np.asarray(flat, dtype=dtype).reshape(spec["shape"])
        if "$dataframe" in node:
            return pd.read_parquet(self._path(node["$dataframe"], where))
        if "$booster" in node:
            return lgb.Booster(model_str=self._path(node["$booster"], where).read_text(encoding="utf-8"))
        if "$catboost" in node:
            from catboost import CatBoost  # only bundles with an ensemble need it

            model = CatBoost()
            model.load_model(str(self._path(node["$catboost"], where)), format="cbm")
            return model
        if "$dataclass" in node:
            return self._dataclass(_bundle_class(node["$dataclass"], where), node["fields"], where)
        if "$object" in node:
            cls = _bundle_class(node["$object"], where)
            obj = cls.__new__(cls)
            obj.__dict__.update({k: self.decode(v, f"{where}.{k}") for k, v in node["attributes"].items()})
            return obj
        raise BundleError(f"{self.folder}/{TREE_FILE}: {where} is not a bundle value: keys {sorted(node)}")

    def _dataclass(self, cls: type, stored: dict[str, Any], where: str) -> Any:
        if not dataclasses.is_dataclass(cls):
            raise BundleError(f"{where}: {_class_name(cls)} is not a dataclass")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(stored) - set(known))
        if unknown:
            raise BundleError(f"{where}: {_class_name(cls)} has no field {', '.join(unknown)} in this cxpredict "
                              "version (the bundle was written by a newer one)")
        values = {k: self.decode(v, f"{where}.{k}") for k, v in stored.items()}
        # Fields missing from an older bundle take their defaults; a required one is an error.
        missing = [name for name, f in known.items() if name not in values and f.init
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise BundleError(f"{where}: the bundle lacks {_class_name(cls)}'s field {', '.join(missing)}")
        obj = cls(**{k: v for k, v in values.items() if known[k].init})
        for name, value in values.items():
            if not known[name].init:
                object.__setattr__(obj, name, value)
        return obj


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def write_bundle_files(value: Any, folder: Path) -> BundleFiles:
    """Write an object tree as a bundle folder (created; must be empty or absent).

    Args:
        value: the root object (a `ScoringBundle`).
        folder: where to write.
    Returns:
        The folder and its manifest's SHA-256.
    Raises:
        BundleError: a value is of a kind a bundle does not store.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise BundleError(f"{folder}: not empty; a bundle is written into a new folder")
    writer = _Writer(folder)
    tree = {"format": FORMAT, "version": FORMAT_VERSION, "root": writer.encode(value, "bundle")}
    write_bytes_atomic(json.dumps(tree, indent=1, allow_nan=False).encode("utf-8"), folder / TREE_FILE)
    files = {name: sha256_file(folder / name) for name in sorted([TREE_FILE, *writer.files])}
    manifest = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "sha256": files}, indent=1).encode("utf-8")
    write_bytes_atomic(manifest, folder / MANIFEST_FILE)
    return BundleFiles(folder, hashlib.sha256(manifest).hexdigest())


def check_bundle_files(folder: Path, expected_sha256: str | None = None, label: str | None = None) -> set[str]:
    """Check a bundle folder against its manifest, and the manifest against the recorded SHA-256.

    Args:
        folder: the bundle folder.
        expected_sha256: the manifest's SHA-256 as recorded at training (None: the manifest is
            taken as it is, which still catches a file changed or added on its own).
        label: how errors name the bundle (default: the folder), e.g. the registered version.
    Returns:
        The file names the manifest lists.
    Raises:
        BundleError: no manifest (not a bundle folder).
        BundleIntegrityError: the manifest or a file differs from what was recorded.
    """
    label = label or str(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{label}: no {MANIFEST_FILE}: not a cxpredict bundle folder (older models were pickles: "
                          "retrain to register one in the data format)")
    raw = manifest_path.read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and got != expected_sha256:
        raise BundleIntegrityError(f"{label}: {MANIFEST_FILE} has SHA-256 {got}, not the {expected_sha256} recorded "
                                   "at training: the model files were changed, refused")
    try:
        manifest = json.loads(raw)
        recorded: dict[str, str] = manifest["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{label}: {MANIFEST_FILE} is not a bundle manifest ({err})") from err
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise BundleError(f"{label}: {MANIFEST_FILE} is format {manifest.get('format')!r} version "
                          f"{manifest.get('version')!r}; this cxpredict reads {FORMAT!r} version {FORMAT_VERSION}")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    for name in sorted(present - set(recorded)):
        raise BundleIntegrityError(f"{label}: {name} is not listed in the bundle's manifest, refused")
    for name, digest in sorted(recorded.items()):
        if name not in present:
            raise BundleIntegrityError(f"{label}: {name} is listed in the bundle's manifest but missing, refused")
        actual = sha256_file(folder / name)
        if actual != digest:
            raise BundleIntegrityError(f"{label}: {name} has SHA-256 {actual}, not the {digest} of its manifest: "
                                       "the file was changed, refused")
    return set(recorded)


def read_bundle_files(folder: Path, expected_sha256: str | None = None, label: str | None = None) -> Any:
    """Check a bundle folder (`check_bundle_files`) and rebuild its object tree.

    Raises:
        BundleError, BundleIntegrityError: see `check_bundle_files`; also a tree naming a class
            outside cxpredict's feature and model packages, or a field this version lacks.
    """
    files = check_bundle_files(folder, expected_sha256, label)
    try:
        tree = json.loads((folder / TREE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"{folder / TREE_FILE}: unreadable ({err})") from err
    if tree.get("format") != FORMAT or tree.get("version") != FORMAT_VERSION:
        raise BundleError(f"{folder / TREE_FILE}: not a {FORMAT} version {FORMAT_VERSION} tree")
    return _Reader(folder, files).decode(tree["root"], "bundle")
