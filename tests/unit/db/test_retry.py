import pytest
import sqlalchemy as sa

from pipelines.db import RetryPolicy, with_retry


def test_retry_backs_off_on_transient_errors_and_is_bounded() -> None:
    class Dropped(Exception):
        pass

    err = sa.exc.OperationalError("SELECT 1", {}, Dropped("database is locked"))
    sleeps: list[float] = []
    calls = iter(range(10))

    def flaky() -> str:
        if next(calls) < 2:
            raise err
        return "done"

    policy = RetryPolicy(attempts=5, base_delay=0.1, max_delay=1.0, max_total=10)
    assert with_retry(flaky, what="t", policy=policy, sleep=sleeps.append) == "done"
    assert len(sleeps) == 2 and sleeps[0] <= 0.1 and sleeps[1] <= 0.2
    always = iter(range(100))
    with pytest.raises(sa.exc.OperationalError):
        with_retry(
            lambda: (next(always), (_ for _ in ()).throw(err)), what="t", policy=policy, sleep=sleeps.append
        )
    assert next(always) == 5  # gave up after `attempts` calls
    with pytest.raises(ValueError):
        with_retry(lambda: int("x"), what="t", policy=policy, sleep=sleeps.append)
