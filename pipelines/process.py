"""Process-wide settings of a process that runs seam's steps (a CLI command, an Airflow task).

    set_up_process() -> None          both of the below; the CLI and every Airflow task call it first
    use_system_allocator() -> str     Arrow's buffers from the C library's allocator
    return_freed_memory() -> dict     glibc hands large freed blocks back to the system at once

pyarrow allocates from mimalloc by default, which keeps the memory a task frees for its own
later use: a task's peak RSS then grows with every large transient table it made (a night's
group-by, a record batch of every shard), not only with what it holds at once.  Measured on the
16x demo (BENCHMARKS.md, issue 19): the system allocator gives back what is freed, and the
reconcile, validation and extraction steps peak 36-94 MB lower in the same time.

glibc's allocator in turn keeps freed blocks in its heap: it raises its mmap threshold each time
a large block is freed (up to 32 MB), so the buffers of one shard are carved from the heap, and
a block the next shard still holds at the heap's top pins everything freed below it.  A task
that reads shard after shard then creeps upwards.  With both thresholds fixed at 128 KiB, every
large buffer is its own mapping and goes back when freed: on the 64x night the report peaks
409 -> 352 MB and validation 463 -> 430 MB in the same time (BENCHMARKS.md).  The operator's own
`MALLOC_*` variables or `GLIBC_TUNABLES` win; other C libraries are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import pyarrow as pa

#: Set this to choose Arrow's allocator yourself (`system`, `mimalloc`, `jemalloc`).
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"

#: Blocks at least this large are mapped on their own and handed back when freed (bytes).
MMAP_THRESHOLD = 128 * 1024
#: Free memory at the heap's top beyond this is handed back (bytes).
TRIM_THRESHOLD = 128 * 1024
#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The operator's own settings of glibc's allocator, which are left alone.
_MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def set_up_process() -> None:
    """Set a step's process up: call it before the step reads any data."""
    use_system_allocator()
    return_freed_memory()


def use_system_allocator() -> str:
    """Make the system allocator Arrow's default memory pool, unless the environment variable
    `ARROW_DEFAULT_MEMORY_POOL` chose one; returns the allocator in use."""
    if os.environ.get(ARROW_POOL_VARIABLE):
        return pa.default_memory_pool().backend_name
    pa.set_memory_pool(pa.system_memory_pool())
    return pa.default_memory_pool().backend_name


def return_freed_memory() -> dict[str, int]:
    """Fix glibc's mmap and trim thresholds at 128 KiB, so freed large blocks leave the process;
    returns the settings made (empty where the C library is not glibc or the operator set one of
    `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `GLIBC_TUNABLES`)."""
    if any(os.environ.get(name) for name in _MALLOC_VARIABLES):
        return {}
    if platform.libc_ver()[0] != "glibc":
        return {}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    made: dict[str, int] = {}
    for name, param, value in (
        ("mmap_threshold", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        ("trim_threshold", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ):
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            made[name] = value
    return made
