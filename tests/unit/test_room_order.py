"""The rooms' import order holds: ``lint-imports`` keeps every contract in pyproject.toml.

CI runs the tests, not ``make lint``, so this is where the order is enforced. The console
script is the one installed beside this interpreter (``python -m importlinter.cli`` runs
nothing and exits 0). It lints the code of this checkout: it puts its working directory
first on the import path.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), f"{lint_imports} is missing: install the dev extras"
    with (ROOT / "pyproject.toml").open("rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    run = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert f"Contracts: {len(contracts)} kept, 0 broken." in output, output
