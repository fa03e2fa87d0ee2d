"""Process-wide settings of a process that runs seam's steps (a CLI command, an Airflow task).

    use_system_allocator() -> str   Arrow's buffers from the C library's allocator

pyarrow allocates from mimalloc by default, which keeps the memory a task frees for its own
later use: a task's peak RSS then grows with every large transient table it made (a night's
group-by, a record batch of every shard), not only with what it holds at once.  Measured on the
16x demo (BENCHMARKS.md, issue 19): the system allocator gives back what is freed, and the
reconcile, validation and extraction steps peak 36-94 MB lower in the same time.
"""

from __future__ import annotations

import os

import pyarrow as pa

#: Set this to choose Arrow's allocator yourself (`system`, `mimalloc`, `jemalloc`).
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def use_system_allocator() -> str:
    """Make the system allocator Arrow's default memory pool, unless the environment variable
    `ARROW_DEFAULT_MEMORY_POOL` chose one; returns the allocator in use."""
    if os.environ.get(ARROW_POOL_VARIABLE):
        return pa.default_memory_pool().backend_name
    pa.set_memory_pool(pa.system_memory_pool())
    return pa.default_memory_pool().backend_name
