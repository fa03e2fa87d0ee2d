import logging

from pipelines.progress import Progress


def test_progress_logs_done_rate_and_time_left_at_most_every_interval(caplog):
    ticks = iter([0.0, 10.0, 31.0, 40.0, 62.0, 70.0])
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        p = Progress("forecast", 100, clock=lambda: next(ticks))
        for _ in range(5):
            p.add(10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "forecast: 20/100 series (20%), 0.6 series/s, about 2m04s left",
        "forecast: 40/100 series (40%), 0.6 series/s, about 1m33s left",
    ]
