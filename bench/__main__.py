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

from bench import (
    api_calls,
    cold_start,
    consumer_overhead,
    delayed_jobs,
    job_api,
    local_cloud,
    requests,
    workflows,
)
from bench.results import Metric, format_table, write_json

RESULTS = Path(__file__).resolve().parent / "results.json"


def _api_calls(quick: bool) -> tuple[list[Metric], list[str]]:
    return api_calls.run(quick=quick)


def _overhead(quick: bool) -> tuple[list[Metric], list[str]]:
    return consumer_overhead.run(quick=quick), []


def _cold_start(quick: bool) -> tuple[list[Metric], list[str]]:
    return cold_start.run(quick=quick), []


def _local_cloud(quick: bool) -> tuple[list[Metric], list[str]]:
    return local_cloud.run(quick=quick)


def _delayed_jobs(quick: bool) -> tuple[list[Metric], list[str]]:
    return delayed_jobs.run(quick=quick)


def _workflows(quick: bool) -> tuple[list[Metric], list[str]]:
    return workflows.run(quick=quick)


def _job_api(quick: bool) -> tuple[list[Metric], list[str]]:
    return job_api.run(quick=quick)


def _requests(quick: bool) -> tuple[list[Metric], list[str]]:
    return requests.run(quick=quick)


BENCHMARKS: dict[str, Callable[[bool], tuple[list[Metric], list[str]]]] = {
    consumer_overhead.GROUP: _overhead,
    cold_start.GROUP: _cold_start,
    api_calls.GROUP: _api_calls,
    local_cloud.GROUP: _local_cloud,
    delayed_jobs.GROUP: _delayed_jobs,
    workflows.GROUP: _workflows,
    job_api.GROUP: _job_api,
    requests.GROUP: _requests,
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
