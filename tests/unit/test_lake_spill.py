"""A task's scratch rows between two passes (`Lake.spill`): what is appended is read back whole,
in order and with its types; the folder goes when the block ends, even on an error."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.lake import Lake


def test_rows_come_back_in_order_with_their_types_part_by_part(tmp_path):
    days = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"])
    with Lake(tmp_path).spill() as spill:
        spill.append("rows", 3, pd.DataFrame({"sku": ["a", "b"], "ds": days[:2], "n": [1.5, None]}))
        spill.append("rows", 0, pd.DataFrame({"sku": ["z"], "ds": days[2:], "n": [7.0]}))
        spill.append("rows", 3, pd.DataFrame({"sku": ["c"], "ds": days[2:], "n": [2]}))  # int: cast to float
        spill.append("rows", 5, pd.DataFrame({"sku": [], "ds": [], "n": []}))  # nothing
        got = spill.read("rows", 3)
        assert got is not None
        assert got["sku"].tolist() == ["a", "b", "c"] and got["ds"].tolist() == list(days[[0, 1, 2]])
        assert got["n"].dtype == float and got["n"].isna().tolist() == [False, True, False]
        assert spill.read("rows", 3)["n"].tolist()[2] == 2.0  # read again: the same rows
        assert spill.read("rows", 5) is None and spill.read("other", 0) is None
        with pytest.raises(ValueError, match="read already"):
            spill.append("rows", 3, pd.DataFrame({"sku": ["d"], "ds": days[:1], "n": [1.0]}))
        with pytest.raises(ValueError, match=r"columns \['sku'\], expected \['sku', 'ds', 'n'\]"):
            spill.append("rows", 0, pd.DataFrame({"sku": ["d"]}))
        folder = spill.folder
        assert folder.parent == tmp_path / "_staging" and any(folder.iterdir())
    assert not folder.exists()


def test_the_spill_is_removed_when_the_task_fails(tmp_path):
    with pytest.raises(RuntimeError), Lake(tmp_path).spill() as spill:
        spill.append("rows", 0, pd.DataFrame({"x": [1]}))
        folder = spill.folder
        raise RuntimeError("the task failed")
    assert not folder.exists()
