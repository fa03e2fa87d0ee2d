"""A fixed seeded panel whose no-driver forecast is saved in `data/` (made by the forecaster as
it was before demand drivers existed)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def reference_panel() -> pd.DataFrame:
    """Smooth weekly-seasonal, trending and intermittent daily series (120 days each)."""
    rng = np.random.default_rng(1612)
    days = 120
    t = np.arange(days)
    ds = pd.date_range("2026-01-05", periods=days, freq="D")
    parts = []
    for i in range(4):
        level = 20 + 5 * i
        y = level * (1 + 0.3 * np.sin(2 * np.pi * t / 7)) + 0.05 * i * t + rng.normal(0, 2, days)
        parts.append((f"smooth{i}", np.maximum(y, 0)))
    for i in range(2):
        parts.append((f"sparse{i}", np.where(rng.random(days) < 0.2, rng.poisson(4, days) + 1, 0)))
    return pd.concat(
        [pd.DataFrame({"unique_id": uid, "ds": ds, "y": np.asarray(y, dtype=float)}) for uid, y in parts],
        ignore_index=True,
    )
