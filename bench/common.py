"""The one way every benchmark reports: figures with targets, printed and optionally saved as JSON.

Benchmarks run as modules from the repository root (`python -m bench.stt`), so `bench`, `tests`
and the services import as packages. `python -m bench.run_all` runs each with `--json FILE`
and merges the files into one table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    # Target and comparison ("<=" or ">="); None for figures that are only informative.
    target: float | None = None
    op: str = "<="
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.op == "<=" else self.value >= self.target

    def row(self) -> str:
        target = f"{self.op} {self.target:g} {self.unit}" if self.target is not None else "-"
        verdict = {True: "pass", False: "FALLS SHORT", None: "info"}[self.passed]
        return f"| {self.name} | {self.value:.3g} {self.unit} | {target} | {verdict} |"


def ms(values: Iterable[float]) -> float:
    """The median of seconds, in milliseconds."""
    return statistics.median(values) * 1000


def p90(values: Iterable[float]) -> float:
    """The 90th percentile (linear interpolation), in the values' own unit."""
    return float(np.percentile(list(values), 90))


def parser(description: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--json", type=Path, help="Also write the figures to this JSON file")
    return args


def table(figures: list[Figure], title: str | None = None) -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| figure | value | target | result |", "| --- | --- | --- | --- |"]
    lines += [f.row() for f in figures]
    return "\n".join(lines)


def report(figures: list[Figure], title: str, json_path: Path | None) -> None:
    print(table(figures, title))
    if json_path is not None:
        json_path.write_text(json.dumps({"title": title, "figures": [asdict(f) for f in figures]}, indent=2))


def load(json_path: Path) -> tuple[str, list[Figure]]:
    data = json.loads(json_path.read_text())
    return data["title"], [Figure(**f) for f in data["figures"]]
