"""The night's inputs of the forecast step (`pipelines.inputs`) that need no lake."""

from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from pipelines.config import parse_config
from pipelines.inputs import driver_frame

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **anomaly: object):
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    raw["anomaly"].update(anomaly)
    raw["forecast"].update(drivers=["holidays"], horizon=40)
    return parse_config(raw, base=tmp_path)


def _series() -> pd.DataFrame:
    days = pd.date_range("2026-09-01", "2026-11-22", freq="D")
    return pd.concat(
        pd.DataFrame({"unique_id": f"{sku}|W1", "sku": sku, "warehouse": "W1", "ds": days, "y": 1.0})
        for sku in ("A", "B")
    )


def test_the_holiday_drivers_are_the_countrys_over_the_history_and_the_horizon(tmp_path):
    cfg = _config(tmp_path, holiday_country="DE", holiday_subdivision="BY")
    frame = driver_frame(cfg, date(2026, 11, 22), _series())
    assert frame is not None
    on = frame[frame["holiday"] > 0]
    # German Unity Day and All Saints' Day (Bavaria) in the history, Christmas and New Year in the
    # 40 days ahead (to 2027-01-01); the listed 2025-12-25 and 2026-01-01 are outside both
    expected = {"2026-10-03", "2026-11-01", "2026-12-25", "2026-12-26", "2027-01-01"}
    assert set(on["ds"].dt.strftime("%Y-%m-%d")) == expected
    assert on.groupby("unique_id").size().to_dict() == {"A|W1": 5, "B|W1": 5}


def test_without_a_country_the_listed_holidays_in_range_are_the_drivers(tmp_path):
    cfg = _config(tmp_path, holidays={"2026-10-05": "Stocktaking", "2024-01-01": "long ago"})
    frame = driver_frame(cfg, date(2026, 11, 22), _series())
    assert frame is not None
    assert set(frame.loc[frame["holiday"] > 0, "ds"].dt.strftime("%Y-%m-%d")) == {"2026-10-05"}


def test_a_partition_reads_the_lines_a_cutoff_left_out_only_when_the_cutoff_was_too_late(tmp_path):
    """A score shard sends a customer's lines older than its cut-off day in a batch of their own;
    the partition reads it only when the customer comes short of `window` (50) earlier lines."""
    import numpy as np

    from pipelines.inputs import customer_fits
    from pipelines.lake import Lake
    from pipelines.state import write_record_cutoffs, write_shard_plan

    night, after = date(2026, 11, 22), pd.Timestamp("2026-11-15")
    lake = Lake(tmp_path / "lake")
    write_shard_plan(lake, night, 1, partitions=1)

    def sent(days: list[str], cutoff: str) -> list[int]:
        lines = pd.DataFrame({"customer_id": "c", "order_date": pd.to_datetime(days), "n": range(len(days))})
        day = (pd.Timestamp(cutoff) - pd.Timestamp("1970-01-01")).days
        cutoffs = pd.DataFrame({"customer_id": ["c"], "cutoff": [day], "customer_part": [0]})
        write_record_cutoffs(lake, night, after.date(), cutoffs, 1)
        older = (lines["order_date"] < pd.Timestamp(cutoff)).to_numpy()
        lake.write_exchange(
            "record_fits",
            night,
            0,
            lines.assign(part=np.where(older, 1, 0)),
            by="part",
            parts=2,
            manifest={"pairs": {}},
        )
        fits, _ = customer_fits(lake, night, 0, 1, after=after)
        return sorted(fits["n"])

    # 10 lines on Nov 5, 60 on Nov 12, one in the window: the cut-off (Nov 12) holds
    assert sent(["2026-11-05"] * 10 + ["2026-11-12"] * 60 + ["2026-11-20"], "2026-11-12") == list(
        range(10, 71)
    )
    # 30 on Nov 10, 30 on Nov 12: a cut-off on Nov 12 (a line counted twice) leaves 30, so the
    # partition reads the other 30 too
    assert sent(["2026-11-10"] * 30 + ["2026-11-12"] * 30 + ["2026-11-20"], "2026-11-12") == list(range(61))
