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


def test_hashes_come_back_sorted_a_bucket_at_a_time_in_memory_or_spilled(tmp_path):
    """The buckets in order are `np.sort` of every hash added, whether the hashes stayed in memory
    or went to the spill once more than `in_memory` were added (16 bucket files); the repeated
    hashes are found either way, each once."""
    import numpy as np

    from pipelines.lake import HashBuckets

    rng = np.random.default_rng(7)
    parts = [rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False) for n in (300, 1, 0, 700)]
    parts.append(parts[0][:5].copy())  # five hashes seen twice
    parts.append(np.array([2**64 - 1, 0, 2**64 - 1], dtype=np.uint64))  # the extremes, one twice
    every = np.sort(np.concatenate(parts))
    repeated = np.unique(every[1:][every[1:] == every[:-1]])
    assert len(repeated) == 6
    with Lake(tmp_path).spill() as spill:
        kept = HashBuckets(spill, "small", in_memory=10_000)
        moved = HashBuckets(spill, "large", in_memory=500)
        plain = HashBuckets(None, "plain")
        for part in parts:
            for buckets in (kept, moved, plain):
                buckets.add(part)
        assert (kept.spilled, moved.spilled, plain.spilled) == (False, True, False)
        assert len(list(spill.folder.glob("large-*.arrow"))) == 16
        assert not list(spill.folder.glob("small-*"))
        pieces = list(moved.sorted_buckets())
        assert len(pieces) == 16
        np.testing.assert_array_equal(np.concatenate(pieces), every)
        np.testing.assert_array_equal(np.concatenate(list(kept.sorted_buckets())), every)
        np.testing.assert_array_equal(plain.repeated(), repeated)
        again = HashBuckets(spill, "again", in_memory=0)
        for part in parts:
            again.add(part)
        np.testing.assert_array_equal(again.repeated(), repeated)
