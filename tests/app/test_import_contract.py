"""The import contract in pyproject.toml ([tool.importlinter]) holds for the tree, and it can fail."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_the_import_contract():
    out = _lint(ROOT, ROOT / "pyproject.toml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_contract_fails_when_the_core_imports_a_stage(tmp_path):
    """Same contracts on a toy tree where graphrec.core imports etl and serving imports training."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for pkg in ("graphrec", "graphrec/core", "graphrec/app", "etl", "training", "serving", "evaluation"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "etl" / "build.py").write_text("X = 1\n")
    (tmp_path / "training" / "fit.py").write_text("Y = 1\n")
    (tmp_path / "graphrec" / "core" / "config.py").write_text("from etl.build import X\n")
    (tmp_path / "serving" / "picks.py").write_text("from training.fit import Y\n")
    lines = ["[tool.importlinter]", 'root_packages = ["graphrec", "etl", "training", "serving", "evaluation"]']
    for c in contracts:
        lines.append("[[tool.importlinter.contracts]]")
        for key, value in c.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
    config = tmp_path / "pyproject.toml"
    config.write_text("\n".join(lines) + "\n")
    out = _lint(tmp_path, config)
    assert out.returncode != 0
    assert "The core imports no stage and not the app BROKEN" in out.stdout
    assert "etl, training and serving import no other stage BROKEN" in out.stdout
    assert "Stages do not import the app KEPT" in out.stdout
