"""One benchmark figure next to its same-run baseline, the JSON file and the terminal table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float | None
    command: str


def ratio(value: float, baseline: float) -> float | None:
    """``value / baseline``; 1.0 when both are zero, None when only the baseline is."""
    if baseline == 0:
        return 1.0 if value == 0 else None
    return value / baseline


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def command(group: str, *, quick: bool) -> str:
    return f".venv/bin/python -m bench --only {group}" + (" --quick" if quick else "")


def write_json(metrics: Sequence[Metric], path: Path) -> None:
    rows = [
        asdict(m) | {"value": _round(m.value), "baseline_value": _round(m.baseline_value)} for m in metrics
    ]
    for row in rows:
        if row["ratio"] is not None:
            row["ratio"] = round(row["ratio"], 4)
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def format_table(metrics: Sequence[Metric]) -> str:
    """An aligned table; each distinct baseline is spelled out once below it, by number."""
    legend: dict[str, int] = {}
    for m in metrics:
        legend.setdefault(m.baseline, len(legend) + 1)
    header = ("metric", "value", "baseline", "unit", "ratio", "vs")
    rows = [
        (
            m.name,
            _show(m.value),
            _show(m.baseline_value),
            m.unit,
            "-" if m.ratio is None else f"{m.ratio:.2f}x",
            f"[{legend[m.baseline]}]",
        )
        for m in metrics
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 4}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows), "", "baselines:"]
    out += [f"  [{number}] {text}" for text, number in legend.items()]
    return "\n".join(out)


def _round(value: float) -> float:
    return round(value, 4) if abs(value) < 10 else round(value, 1)


def _show(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
