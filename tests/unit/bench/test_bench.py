"""The benchmark package (bench/): importing it has no side effect; its registry names each benchmark's group."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from bench.__main__ import BENCHMARKS, parse_args

pytestmark = pytest.mark.unit

MODULES = {
    "overhead": "bench.consumer_overhead",
    "cold_start": "bench.cold_start",
    "api_calls": "bench.api_calls",
    "localcloud": "bench.local_cloud",
    "jobs": "bench.delayed_jobs",
    "workflows": "bench.workflows",
    "api": "bench.job_api",
    "requests": "bench.requests",
    "permissions": "bench.permission_mutations",
}


def test_importing_bench_leaves_the_environment_alone() -> None:
    # Given a fresh interpreter
    script = (
        "import os; before = dict(os.environ)\n"
        "import bench, bench.__main__, bench.cost, bench.environment, bench.results\n"
        "changed = sorted(k for k in before.keys() | os.environ.keys() if before.get(k) != os.environ.get(k))\n"
        "print(changed)"
    )
    # When it imports the package, its entry point and the cost model
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # Then no environment variable was set, changed or removed
    assert done.stdout.strip() == "[]"


def test_every_benchmark_is_registered_under_its_group() -> None:
    # Given the names --only takes
    assert list(BENCHMARKS) == list(MODULES)
    assert parse_args(["--only", "requests", "--quick"]).only == ["requests"]
    # Then each is the GROUP of the module that runs it (the name its results' commands use)
    for name, module in MODULES.items():
        assert name == importlib.import_module(module).GROUP
