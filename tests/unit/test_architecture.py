"""The architecture contracts (pyproject.toml, [tool.importlinter]) hold, and each one fails when a
forbidden import is added: import-linter itself, run on the real tree and on copies with one import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("asyncstack", "localcloud", "shared", "infra", "functions", "demo", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=where, capture_output=True, text=True, check=False,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(where)},
    )  # fmt: skip


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("localcloud/clock.py", "import shared.events", "localcloud imports nothing of ours"),
        ("localcloud/sqs/pollers.py", "import asyncstack.contract", "localcloud imports nothing of ours"),
        ("asyncstack/runtime/consumer.py", "import aws_cdk", "asyncstack.runtime never imports CDK"),
        ("asyncstack/runtime/settings.py", "import asyncstack.cdk.work_queue", "asyncstack.runtime never imports CDK"),
        ("asyncstack/cdk/work_queue.py", "import shared.events", "the framework never imports the example"),
        ("shared/orders.py", "import demo.pipeline", "the example never imports the demo"),
    ],
)  # fmt: skip
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    # Given a copy of the tree with one forbidden import added
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # added by the test\n")
    # When the contracts are checked
    result = lint_imports(tmp_path)
    # Then the check fails and names the broken contract
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line for line in broken if line.startswith(contract)], result.stdout
