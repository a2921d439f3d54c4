"""Cold start: the time to import (and so initialise) each handler module in a new interpreter.

Each measurement is a fresh ``python -c`` that times ``importlib.import_module`` alone (not the
interpreter's own start-up), with the repository on ``PYTHONPATH`` and the Powertools variables
set, as Lambda's runtime imports the handler module during the init phase. The baseline is
``bench.bare_handler``, which imports only boto3. Runs are interleaved across modules so that
noise from other work on the machine spreads over all of them, and the first is discarded (it
may compile bytecode).
"""

from __future__ import annotations

import subprocess
import sys

from bench.environment import REPO_ROOT, subprocess_env
from bench.results import Metric, command, median, ratio

GROUP = "cold_start"
BARE = "bench.bare_handler"
HANDLERS = {
    "inventory": "functions.inventory.handler",
    "email": "functions.email.handler",
    "analytics": "functions.analytics.handler",
}
PROBE = """\
import importlib, sys, time
start, cpu = time.perf_counter(), time.process_time()
importlib.import_module(sys.argv[1])
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def import_seconds(module: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of importing ``module`` in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        env=subprocess_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def run(*, quick: bool = False) -> list[Metric]:
    runs = 2 if quick else 5
    modules = [BARE, *HANDLERS.values()]
    wall: dict[str, list[float]] = {module: [] for module in modules}
    cpu: dict[str, list[float]] = {module: [] for module in modules}
    for round_ in range(runs + 1):
        for module in modules:
            wall_s, cpu_s = import_seconds(module)
            if round_:  # the first round warms the bytecode cache and the file system
                wall[module].append(wall_s * 1000)
                cpu[module].append(cpu_s * 1000)
    baseline = f"bare handler module importing only boto3 ({BARE}); median of {runs} fresh interpreters"
    metrics = []
    for samples, suffix in ((wall, "import_ms"), (cpu, "import_cpu_ms")):
        bare_ms = median(samples[BARE])
        metrics += [
            Metric(
                name=f"cold_start.{name}.{suffix}",
                value=median(samples[module]),
                unit="ms",
                baseline=baseline,
                baseline_value=bare_ms,
                ratio=ratio(median(samples[module]), bare_ms),
                command=command(GROUP, quick=quick),
            )
            for name, module in HANDLERS.items()
        ]
    return metrics
