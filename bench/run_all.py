"""Run every benchmark in bench/ and print one table: each figure, its target, pass or falls short.

    python -m bench.run_all                    # all of them, one after another
    python -m bench.run_all --only stt,tts     # some of them
    python -m bench.run_all --readme           # also put the table (and date) into README.md

Each `bench/<name>.py` runs as its own process with `--json FILE` (one at a time: they would
distort each other's timings). A benchmark that fails, times out, writes no figures or does
not exist is listed as such in the table, never left out. The end-to-end figures (the last
speech sample into the microphone -> first reply audio out of the speaker, p50 and p90) come
from `bench/satellite.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Figure, load

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOT_BENCHMARKS = {"common", "run_all", "__init__", "peers"}  # peers: the reference servers' venvs
# Benchmarks the issues ask for: listed even when their script does not exist (yet).
EXPECTED = ("stt", "tts", "llm", "satellite", "turn", "stt_names", "abuse")
END_TO_END = "last speech sample -> first reply audio"
README_SECTION = "## Benchmarks"
TABLE_START, TABLE_END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "failed", "missing"
    title: str = ""
    figures: list[Figure] = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0


def discover() -> list[str]:
    found = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in NOT_BENCHMARKS)
    return list(dict.fromkeys([*[n for n in EXPECTED if n in found], *found]))


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:])[-300:]


def run_one(name: str, timeout: float, log_dir: Path) -> Outcome:
    script = BENCH / f"{name}.py"
    if not script.exists():
        return Outcome(name, "missing", detail=f"bench/{name}.py does not exist")
    json_path = log_dir / f"{name}.json"
    log_path = log_dir / f"{name}.log"
    print(f"== bench/{name}.py (log: {log_path})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", f"bench.{name}", "--json", str(json_path)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    if code is None:
        return Outcome(name, "failed", detail=f"timed out after {timeout:g} s", seconds=seconds)
    if code != 0:
        return Outcome(name, "failed", detail=f"exit {code}: {_last_lines(output)}", seconds=seconds)
    if not json_path.exists():
        return Outcome(name, "failed", detail="exited 0 but wrote no figures", seconds=seconds)
    try:
        title, figures = load(json_path)
    except (ValueError, KeyError, TypeError) as err:
        return Outcome(name, "failed", detail=f"unreadable figures: {err}", seconds=seconds)
    return Outcome(name, "ok", title, figures, seconds=seconds)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    # 1440 ms, 35.4 %, 0.265 x: no exponents in a table people read.
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _value(figure: Figure) -> str:
    return f"{_number(figure.value)} {figure.unit}".strip()


def _target(figure: Figure) -> str:
    if figure.target is None:
        return "-"
    return f"{figure.op} {_number(figure.target)} {figure.unit}".strip()


def _verdict(figure: Figure) -> str:
    return {True: "pass", False: "FALLS SHORT", None: "info"}[figure.passed]


def is_end_to_end(figure: Figure) -> bool:
    name = figure.name.lower().replace("→", "->")
    return "last speech sample" in name and "first reply audio" in name


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| benchmark | figure | value | target | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    end_to_end = [(o, f) for o in outcomes for f in o.figures if is_end_to_end(f)]
    # The figure the whole stack is judged by comes first.
    for outcome, figure in end_to_end:
        lines.append(
            f"| **end to end** ({outcome.name}) | **{_cell(figure.name)}** | **{_value(figure)}** | "
            f"{_target(figure)} | **{_verdict(figure)}** |"
        )
    if not end_to_end:
        sat = next((o for o in outcomes if o.name == "satellite"), None)
        why = (
            sat.detail if sat is not None and sat.status != "ok" else "bench/satellite.py gave no such figure"
        )
        lines.append(f"| **end to end** | {END_TO_END} | - | - | **NOT MEASURED**: {_cell(why)} |")
    for outcome in outcomes:
        if outcome.status != "ok":
            lines.append(
                f"| {outcome.name} | - | - | - | **{outcome.status.upper()}**: {_cell(outcome.detail)} |"
            )
            continue
        if not outcome.figures:
            lines.append(f"| {outcome.name} | - | - | - | **FAILED**: no figures |")
        # The end-to-end figure stays in its place too: the figures after it may refer to it.
        for figure in outcome.figures:
            name = _cell(figure.name + (f" ({figure.note})" if figure.note else ""))
            lines.append(
                f"| {outcome.name} | {name} | {_value(figure)} | {_target(figure)} | {_verdict(figure)} |"
            )
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> str:
    figures = [f for o in outcomes for f in o.figures]
    short = sum(1 for f in figures if f.passed is False)
    passed = sum(1 for f in figures if f.passed is True)
    bad = [f"{o.name} ({o.status})" for o in outcomes if o.status != "ok"]
    meet = "figure meets its" if passed == 1 else "figures meet their"
    text = f"{passed} {meet} target, {short} {'falls' if short == 1 else 'fall'} short"
    return text + (f"; not run: {', '.join(bad)}" if bad else "; every benchmark ran")


def header(when: dt.datetime, live: bool = True) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (
        f"Taken {when:%Y-%m-%d %H:%M} UTC with `python -m bench.run_all` on {platform.machine()}, "
        f"{cores} cores, no GPU"
    )
    if live and hasattr(os, "getloadavg"):
        text += f" (load average {os.getloadavg()[0]:.1f} at the end: the machine is shared)"
    return text + "."


def rendered(name: str, log_dir: Path) -> Outcome:
    """An earlier run's outcome, from the JSON (and log) it left in `log_dir`."""
    json_path, log_path = log_dir / f"{name}.json", log_dir / f"{name}.log"
    if json_path.exists():
        try:
            title, figures = load(json_path)
            return Outcome(name, "ok", title, figures)
        except (ValueError, KeyError, TypeError) as err:
            return Outcome(name, "failed", detail=f"unreadable figures: {err}")
    if not (BENCH / f"{name}.py").exists():
        return Outcome(name, "missing", detail=f"bench/{name}.py does not exist")
    output = log_path.read_text(errors="replace") if log_path.exists() else ""
    return Outcome(name, "failed", detail=f"no figures: {_last_lines(output) or 'it did not run'}")


def update_readme(readme: Path, body: str) -> None:
    """Put `body` between the table markers in README.md's Benchmarks section."""
    text = readme.read_text()
    if TABLE_START in text and TABLE_END in text:
        before, rest = text.split(TABLE_START, 1)
        _, after = rest.split(TABLE_END, 1)
        readme.write_text(f"{before}{TABLE_START}\n{body.strip()}\n{TABLE_END}{after}")
    else:
        block = f"{TABLE_START}\n{body.strip()}\n{TABLE_END}\n"
        readme.write_text(text.rstrip("\n") + f"\n\n{README_SECTION}\n\n{block}")


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--only", help="Comma-separated benchmark names (default: every bench/*.py)")
    cli.add_argument(
        "--timeout", type=float, default=1200, help="Seconds per benchmark before it counts as failed"
    )
    cli.add_argument(
        "--readme", action="store_true", help="Write the table into README.md's Benchmarks section"
    )
    cli.add_argument("--logs", type=Path, help="Keep each benchmark's output and JSON here")
    cli.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="Do not run: make the table from an earlier run's --logs DIR",
    )
    args = cli.parse_args(argv)

    names = [n.strip() for n in args.only.split(",")] if args.only else discover()
    if args.render is not None:
        outcomes = [rendered(name, args.render) for name in names]
        stamps = [(args.render / f"{o.name}.json").stat().st_mtime for o in outcomes if o.status == "ok"]
        when = dt.datetime.fromtimestamp(max(stamps), dt.UTC) if stamps else dt.datetime.now(dt.UTC)
    else:
        log_dir = args.logs or Path(tempfile.mkdtemp(prefix="bench-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        outcomes = [run_one(name, args.timeout, log_dir) for name in names]
        when = dt.datetime.now(dt.UTC)
    body = "\n\n".join([header(when, live=args.render is None), table(outcomes), summary(outcomes) + "."])
    print(body)
    if args.readme:
        update_readme(ROOT / "README.md", body)
        print(f"README.md: {README_SECTION} updated", file=sys.stderr)
    # A benchmark that did not run is a failure of this command; a figure short of target is not.
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
