import pyarrow as pa
import pytest

from pipelines.errors import SourceUnavailableError


def test_a_failing_range_stream_stops_the_others():
    from pipelines.db.streams import merge_streams

    closed: list[str] = []
    batch = pa.record_batch({"x": [1]})

    def endless():
        try:
            while True:
                yield batch
        finally:
            closed.append("endless")

    def failing():
        yield batch
        raise SourceUnavailableError("the mariadb client failed: lost connection")

    with pytest.raises(SourceUnavailableError, match="lost connection"):
        for _ in merge_streams([endless, failing]):
            pass
    assert closed == ["endless"]
