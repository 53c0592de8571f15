"""The installed layout: one `cxpredict` namespace in site-packages, every package folder in the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Folders at the repository's top that are not installed (tests and benchmarks run from the checkout).
NOT_INSTALLED = {"tests", "bench", "notebooks", "data", "build"}
GENERIC_NAMES = {"models", "features", "training", "serving", "cli", "cli.py"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _declared_packages() -> set[str]:
    return set(_pyproject()["tool"]["setuptools"]["packages"])


def _package_folders() -> dict[str, Path]:
    """`cxpredict.<dotted path>` -> folder, for every folder of the checkout that holds an __init__.py."""
    found = {}
    tops = [p for p in REPO.iterdir() if p.is_dir() and p.name not in NOT_INSTALLED and not p.name.startswith(".")]
    for top in tops:  # not rglob over the checkout: it may hold a .venv
        for init in top.rglob("__init__.py"):
            found[".".join(("cxpredict", *init.parent.relative_to(REPO).parts))] = init.parent
    return found


@pytest.mark.unit
def test_pyproject_names_every_package_folder() -> None:
    folders = _package_folders()
    assert {"cxpredict.features", "cxpredict.models", "cxpredict.training", "cxpredict.serving"} <= set(folders)
    # `cxpredict` itself is the namespace mapped to the repository's root (it holds cli.py).
    assert _declared_packages() == {"cxpredict", *folders}, "pyproject's `packages` and the package folders differ"
    assert _pyproject()["tool"]["setuptools"]["package-dir"] == {"cxpredict": "."}


def _build_wheel(out: Path, source: Path) -> Path:
    """Build the wheel from a copy of exactly the files the package needs (the checkout stays clean)."""
    for name in ("pyproject.toml", "README.md", "cli.py"):
        shutil.copy2(REPO / name, source / name)
    for top in {p.relative_to(REPO).parts[0] for p in _package_folders().values()}:
        shutil.copytree(REPO / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True, text=True, timeout=600)
    wheels = list(out.glob("cxpredict-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_installs_one_namespace_into_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    wheel = _build_wheel(tmp_path / "dist", source)

    # In the wheel: only the namespace and its dist-info at the top, and every module of every
    # declared package (each .py file of each package folder) under cxpredict/.
    dist_info = f"cxpredict-{_pyproject()['project']['version']}.dist-info"
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"cxpredict", dist_info}, tops
    assert "cxpredict/cli.py" in names
    for package, folder in _package_folders().items():
        prefix = package.replace(".", "/")
        for module in folder.glob("*.py"):
            assert f"{prefix}/{module.name}" in names, f"{module.relative_to(REPO)} is missing from the wheel"

    # A fresh venv (no system site-packages), the wheel installed without dependencies.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    listed = {p.name for p in site.iterdir()}
    ours = {n for n in listed if n.lower().startswith("cxpredict")}
    assert ours == {"cxpredict", dist_info}, ours
    tooling = {n for n in listed - ours
               if n.split("-")[0] in ("pip", "setuptools", "pkg_resources", "_distutils_hack", "__pycache__")
               or n == "distutils-precedence.pth"}
    assert listed - ours - tooling == set(), f"unexpected top-level entries: {sorted(listed - ours - tooling)}"
    assert not listed & GENERIC_NAMES

    # The installed package imports and runs with its dependencies from the dev venv's site-packages,
    # appended after the fresh venv's own (so the wheel's cxpredict, not the checkout, is imported).
    (site / "dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = ("import cxpredict.cli, cxpredict.serving.api.app, cxpredict.serving.batch.files, "
             "cxpredict.training.train; print(cxpredict.cli.__file__)")
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert Path(imported.stdout.strip()).resolve() == (site / "cxpredict" / "cli.py").resolve()
    version = subprocess.run([str(venv / "bin" / "cxpredict"), "--version"], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=300)
    assert version.returncode == 0, version.stderr[-2000:]
    assert version.stdout.strip() == f"cxpredict {_pyproject()['project']['version']}"
