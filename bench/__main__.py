"""``python -m bench``: run the benchmarks, print a table, write ``bench/results.json``.

Every figure is compared with a baseline measured in the same run (the machine is shared and
noisy, so the ratios are what to compare across runs, not the absolute numbers).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.environment import configure
from bench.results import Metric, format_table, write_json

RESULTS = Path(__file__).resolve().parent / "results.json"
Benchmark = Callable[[bool], tuple[list[Metric], list[str]]]


# Each benchmark is imported when it runs: the modules it imports (Powertools' among them) read the
# environment that ``configure`` sets, at import time.
def _overhead(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import consumer_overhead

    return consumer_overhead.run(quick=quick), []


def _cold_start(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import cold_start

    return cold_start.run(quick=quick), []


def _api_calls(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import api_calls

    return api_calls.run(quick=quick)


def _local_cloud(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import local_cloud

    return local_cloud.run(quick=quick)


def _delayed_jobs(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import delayed_jobs

    return delayed_jobs.run(quick=quick)


def _workflows(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import workflows

    return workflows.run(quick=quick)


def _job_api(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import job_api

    return job_api.run(quick=quick)


def _requests(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import requests

    return requests.run(quick=quick)


def _permissions(quick: bool) -> tuple[list[Metric], list[str]]:
    from bench import permission_mutations

    return permission_mutations.run(quick=quick)


# Name (as given to --only, and each module's GROUP) -> benchmark, in the order they run.
BENCHMARKS: dict[str, Benchmark] = {
    "overhead": _overhead,
    "cold_start": _cold_start,
    "api_calls": _api_calls,
    "localcloud": _local_cloud,
    "jobs": _delayed_jobs,
    "workflows": _workflows,
    "api": _job_api,
    "requests": _requests,
    "permissions": _permissions,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks, print a table, write bench/results.json."
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke test")
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"where to write the JSON (default {RESULTS})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure()  # fake credentials, quiet Powertools: before any benchmark is imported
    # Powertools warns once per invocation without metrics; the figures are what matters here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    metrics: list[Metric] = []
    notes: list[str] = []
    started = time.perf_counter()
    for name in names:
        print(f"running {name}{' (quick)' if args.quick else ''} ...", flush=True)
        lap = time.perf_counter()
        got, more = BENCHMARKS[name](args.quick)
        metrics += got
        notes += more
        print(f"  {name}: {time.perf_counter() - lap:.1f} s", flush=True)
    write_json(metrics, args.output)
    print()
    print(format_table(metrics))
    if notes:
        print("\nnotes:")
        print("\n".join(f"  {note}" for note in notes))
    print(f"\nwrote {args.output} ({len(metrics)} metrics) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
