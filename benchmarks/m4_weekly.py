"""Accuracy, interval quality and speed of pipelines.forecasting on M4 Weekly (359 series, h=13).

Runs the shared evaluator (../shared/tools/m4eval.py) as a subprocess, exactly as documented,
``--repeat`` times (wall time on a shared 2-core machine is noisy: the median run is reported, all
runs are kept), and writes

- ``benchmarks/results/forecasting_m4_weekly.json``: the evaluator's JSON line of every run;
- the "M4 Weekly" section of ``benchmarks/results/forecasting.md``: a table against the targets and
  the published reference points, with the exact command.

Usage (from the repository root):
    .venv/bin/python benchmarks/m4_weekly.py [--repeat 3] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"owa": 0.78, "acd": 0.02, "msis": 16.5, "series_per_s": 20.0}
REFERENCES = [
    ("statsforecast AutoETS", "0.934", "", ""),
    ("statsforecast AutoARIMA", "0.869", "", ""),
    ("mean of AutoETS+AutoTheta+AutoARIMA (season 52)", "0.812", "16.96", "0.963"),
    ("statsmodels ETS loop", "0.947", "", ""),
    ("statsmodels Theta, season 52", "0.872", "", ""),
    ("M4 Naive2 / Theta / winner / best weekly", "1.000 / 0.971 / 0.851 / 0.739", "", ""),
]
SECTION = "m4_weekly"


def build_command(shared: Path) -> list[str]:
    """The evaluator command, relative to the repository root as documented."""
    return [
        ".venv/bin/python",
        str(shared / "tools" / "m4eval.py"),
        "--data-dir",
        str(shared / "benchmarks" / "m4"),
        "--freq",
        "weekly",
        "--forecaster",
        "pipelines.forecasting:forecast",
    ]


def run_once(command: list[str]) -> dict[str, object]:
    """Run the evaluator once and parse its JSON line."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"m4eval failed ({done.returncode}): {done.stderr[-2000:]}")
    line = [row for row in done.stdout.splitlines() if row.startswith("{")][-1]
    result: dict[str, object] = json.loads(line)
    return result


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the `name` section of a markdown file, delimited by HTML comments."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Forecasting benchmarks\n\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def build_markdown(runs: list[dict[str, object]], command: list[str]) -> str:
    """Markdown section: median run vs targets, every run's speed, and reference points."""
    speeds = [float(r["series_per_s"]) for r in runs]  # type: ignore[arg-type]
    median = sorted(runs, key=lambda r: float(r["series_per_s"]))[len(runs) // 2]  # type: ignore[arg-type]
    rows = [
        ("OWA", median["owa"], f"<= {TARGETS['owa']}", float(median["owa"]) <= TARGETS["owa"]),  # type: ignore[arg-type]
        ("sMAPE", median["smape"], "", None),
        ("MASE", median["mase"], "", None),
        ("MSIS (95%)", median["msis"], f"<= {TARGETS['msis']}", float(median["msis"]) <= TARGETS["msis"]),  # type: ignore[arg-type]
        ("coverage 95%", median["coverage_95"], "0.93-0.97", None),
        ("ACD", median["acd"], f"<= {TARGETS['acd']}", float(median["acd"]) <= TARGETS["acd"]),  # type: ignore[arg-type]
        (
            "series/s (median of runs)",
            round(statistics.median(speeds), 2),
            f">= {TARGETS['series_per_s']}",
            statistics.median(speeds) >= TARGETS["series_per_s"],
        ),
        (
            "2 x series per CPU-second (2 idle cores, load-independent)",
            round(statistics.median(2 * int(r["series"]) / float(r["cpu_seconds"]) for r in runs), 2),  # type: ignore[call-overload, arg-type]
            "",
            None,
        ),
    ]
    lines = [
        "## M4 Weekly (359 series, horizon 13)",
        "",
        "Command (from the repository root), run by `benchmarks/m4_weekly.py`:",
        "",
        "    " + " ".join(command),
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for name, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "no")
        lines.append(f"| {name} | {_fmt(value)} | {target} | {mark} |")
    lines += [
        "",
        f"Runs: {len(runs)}; series/s per run: {', '.join(f'{s:.1f}' for s in speeds)}; "
        f"CPU seconds per run: {', '.join(_fmt(r['cpu_seconds']) for r in runs)}; "
        f"1-minute load average before/after: {', '.join(str(r['loadavg_1m']) for r in runs)}; "
        f"cpus: {median['cpus']}; Python {median['python']}.",
        "",
        "Reference points (same data; from the issue):",
        "",
        "| method | OWA | MSIS | coverage 95% |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {owa} | {msis} | {cov} |" for name, owa, msis, cov in REFERENCES]
    return "\n".join(lines)


def main() -> None:
    """Run the evaluator `--repeat` times and write the JSON and markdown results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="evaluator runs (median reported)")
    parser.add_argument("--shared", default="../shared", help="path of the shared folder")
    parser.add_argument(
        "--from-json", action="store_true", help="re-render the markdown from the saved JSON runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = build_command(Path(args.shared))
    saved = RESULTS / "forecasting_m4_weekly.json"
    runs = [json.loads(row) for row in saved.read_text().splitlines()] if args.from_json else []
    for i in range(0 if args.from_json else args.repeat):
        runs.append(run_once(command))
        logger.info("run %d: %s", i + 1, json.dumps(runs[-1]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forecasting_m4_weekly.json").write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    write_section(RESULTS / "forecasting.md", SECTION, build_markdown(runs, command))
    sys.stdout.write(build_markdown(runs, command) + "\n")


if __name__ == "__main__":
    main()
