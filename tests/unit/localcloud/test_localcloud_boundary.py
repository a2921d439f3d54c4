"""localcloud is a generic local cloud: it imports nothing of this repository's framework or example
(what it knows of a stack comes through extensions, localcloud.extensions)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LOCALCLOUD = Path(__file__).resolve().parents[3] / "localcloud"
OURS = ("asyncstack", "shared", "infra", "bench", "demo", "functions", "app")


def imported_top_levels(path: Path) -> set[str]:
    """The top-level packages a file imports anywhere in it (inside functions too); relative imports
    stay within localcloud."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_localcloud_module_imports_the_framework_the_example_or_the_demo() -> None:
    # Given every Python file of localcloud
    files = sorted(LOCALCLOUD.rglob("*.py"))
    assert len(files) > 20
    # When their imports are read
    offending = {
        str(path.relative_to(LOCALCLOUD)): sorted(imported_top_levels(path) & set(OURS)) for path in files
    }
    # Then none names one of ours
    assert {name: modules for name, modules in offending.items() if modules} == {}


def test_every_localcloud_module_imports_with_ours_unimportable(tmp_path: Path) -> None:
    # Given a Python where our packages cannot be imported at all
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        class Unimportable:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {OURS!r}:
                    raise ModuleNotFoundError(f"{{name}} is not importable in this test")
                return None

        sys.meta_path.insert(0, Unimportable())
        import localcloud
        for module in pkgutil.walk_packages(localcloud.__path__, "localcloud."):
            importlib.import_module(module.name)
        from localcloud.cloud import LocalCloud
        from localcloud.dashboard import DashboardData
        DashboardData(LocalCloud(port=1, api_port=None, workdir=sys.argv[1], extensions=[])).overview()
        print("ok")
        """
    )
    # When every localcloud module is imported there (outside the repository, so only what is installed
    # is on the path) and a cloud's dashboard data is read
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cloud")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    # Then it works
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
