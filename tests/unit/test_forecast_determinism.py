"""The forecaster gives the same bits for the same history, whatever the process, the number of
worker processes and the order of the input rows.

Each run is a fresh interpreter with its own hash seed (so its own heap history), as two nights'
runs are; a run forecasts twice (one configuration, then serially on the rows as given), so state
left over from an earlier forecast in the same process would show too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import pipelines

RUN = """
import sys
import pandas as pd
from pipelines.forecasting import build_options, run_forecast

history = pd.read_pickle(sys.argv[1])
jobs, shuffle = int(sys.argv[3]), int(sys.argv[4])
outs = []
for n_jobs, seed in ((jobs, shuffle), (1, 0)):
    frame = history.sample(frac=1.0, random_state=seed).reset_index(drop=True) if seed else history
    out = run_forecast(frame, 14, "D", (80, 95), build_options("D", n_jobs=n_jobs, serial_below=1))
    outs.append(out.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True))
pd.concat(outs, keys=["configured", "serial"]).to_pickle(sys.argv[2])
"""


def _panel() -> pd.DataFrame:
    """Stationary AR(2) demand (its ARMA fits have nearly cancelling roots, where scipy 1.17's
    `leastsq` read memory it did not own) and intermittent demand; nothing sells on Sundays (a
    closed day, so the calendar's pooled profile is built too)."""
    rng = np.random.default_rng(20261122)
    days, parts = 180, []
    open_day = np.arange(days) % 7 != 6
    n_open = int(open_day.sum())
    for i in range(12):
        e, z = rng.normal(0, 3, n_open + 50), np.zeros(n_open + 50)
        for k in range(2, n_open + 50):
            z[k] = 0.5 * z[k - 1] - 0.2 * z[k - 2] + e[k]
        y = np.zeros(days)
        y[open_day] = np.maximum(40 + z[50:], 0)
        parts.append((f"smooth{i:02d}", y))
    for i in range(6):
        y = np.where(open_day & (rng.random(days) < 0.15), rng.poisson(5, days) + 1, 0)
        parts.append((f"sparse{i:02d}", y))
    ds = pd.date_range("2025-01-06", periods=days, freq="D")
    return pd.concat(
        [pd.DataFrame({"unique_id": uid, "ds": ds, "y": np.asarray(y, dtype=float)}) for uid, y in parts],
        ignore_index=True,
    )


def _run(history: Path, out: Path, jobs: int, shuffle: int, hash_seed: str) -> pd.DataFrame:
    root = str(Path(pipelines.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "PYTHONHASHSEED": hash_seed}
    cmd = [sys.executable, "-c", RUN, str(history), str(out), str(jobs), str(shuffle)]
    subprocess.run(cmd, env=env, check=True, timeout=600)
    frame: pd.DataFrame = pd.read_pickle(out)
    return frame


def _bits(frame: pd.DataFrame) -> dict[str, bytes]:
    """Every column as bytes: float columns compare bit for bit (NaN payloads included)."""
    out = {}
    for col in frame.columns:
        values = frame[col].to_numpy()
        out[col] = values.tobytes() if values.dtype.kind in "fiub" else repr(values.tolist()).encode()
    return out


def test_forecasts_are_bit_identical_across_processes_workers_and_row_order(tmp_path: Path) -> None:
    history = tmp_path / "history.pkl"
    _panel().to_pickle(history)
    first = _run(history, tmp_path / "a.pkl", jobs=1, shuffle=0, hash_seed="1")
    second = _run(history, tmp_path / "b.pkl", jobs=2, shuffle=7, hash_seed="2")
    reference = _bits(first.loc["serial"])
    for frame, key in ((first, "configured"), (second, "configured"), (second, "serial")):
        got = _bits(frame.loc[key])
        differing = [col for col in reference if got[col] != reference[col]]
        assert not differing, f"{key} run differs from the first in {differing}"
    assert len(first.loc["serial"]) == 18 * 14
