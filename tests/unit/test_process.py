"""A step's process takes Arrow's buffers from the system allocator, unless the operator chose one."""

from __future__ import annotations

import subprocess
import sys


def _pool_after(env: dict[str, str]) -> str:
    code = "from pipelines.process import use_system_allocator; print(use_system_allocator())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_system_allocator_unless_the_environment_chose_one(monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    import os

    base = dict(os.environ)
    assert _pool_after(base) == "system"
    assert _pool_after({**base, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"


def test_every_seam_command_and_airflow_task_sets_it_up(monkeypatch, tmp_path):
    """The CLI's entry and the Airflow tasks' night set the process up before anything else, even
    before the config is read (here: a config that does not exist)."""
    import pyarrow as pa
    import pytest

    from pipelines import cli, process
    from pipelines.airflow import tasks

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    returned: list[str] = []
    monkeypatch.setattr(process, "return_freed_memory", lambda: returned.append("set") or {})
    missing = tmp_path / "missing.yml"
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        assert cli.main(["status", "--config", str(missing)]) != 0
        assert pa.default_memory_pool().backend_name == "system" and returned == ["set"]
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        with pytest.raises(Exception, match=r"missing\.yml"):
            tasks.night({"logical_date": None, "data_interval_start": None, "run_id": "r"}, missing)
        assert pa.default_memory_pool().backend_name == "system" and returned == ["set", "set"]
    finally:
        pa.set_memory_pool(pa.system_memory_pool())


_CREEP = """
import ctypes
from pipelines.process import return_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

def block(size):
    address = libc.malloc(size)
    ctypes.memset(address, 1, size)
    return address

made = return_freed_memory() if {apply} else {{}}
libc.free(block(8 * 2**20))  # a large block freed: glibc's default then keeps such blocks in its heap
start = rss_mb()
blocks = [block(512 * 1024) for _ in range(400)]  # 512 KiB, like one column of a record batch
pin = block(4 * 2**20)  # what the next shard still holds
for address in blocks:
    libc.free(address)
print(made.get("mmap_threshold", 0), round(rss_mb() - start), int(pin > max(blocks)))
"""


def _creep(apply: bool, env: dict[str, str]) -> tuple[int, int, bool]:
    out = subprocess.run(
        [sys.executable, "-c", _CREEP.format(apply=apply)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    made, grown, held_above = map(int, out.stdout.split())
    return made, grown, bool(held_above)


def test_freed_large_blocks_leave_the_process_unless_the_operator_tuned_glibc():
    """200 MB of 512 KiB blocks freed below a block still held: glibc keeps them in its heap by
    default (the held block lies above them, so the heap cannot shrink); with seam's thresholds
    each block was its own mapping and went back when freed."""
    import os
    import platform

    import pytest

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the thresholds are glibc's")
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    made, kept, held_above = _creep(False, base)
    assert (made, held_above) == (0, True)
    assert kept > 150
    made, kept, _ = _creep(True, base)
    assert made == 128 * 1024
    assert kept < 10
    made, kept, held_above = _creep(True, {**base, "MALLOC_MMAP_THRESHOLD_": "33554432"})
    assert (made, held_above) == (0, True)
    assert kept > 150
