"""Limit the BLAS thread pool while fitting many tiny models.

Model fits here call BLAS on vectors of a few elements; with OpenBLAS' default thread pool every
such call pays a thread hand-off, which made a statsmodels ETS fit ~10x slower on a 2-core machine
(0.30 s vs 0.027 s). The pool size is set through the OpenBLAS C API of every OpenBLAS library
loaded in the process (numpy and scipy may each bundle one) and restored afterwards; it is a no-op
where none is found. `threadpoolctl` does the same more generally but is not a dependency.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")
_SETTERS = tuple(f"{p}_set_num_threads{s}" for p in _PREFIXES for s in _SUFFIXES)
_GETTERS = tuple(f"{p}_get_num_threads{s}" for p in _PREFIXES for s in _SUFFIXES)


def _openblas_libraries() -> list[ctypes.CDLL]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = sorted(
        {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower() and "/" in line}
    )
    libs = []
    for path in paths:
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            logger.debug("cannot open %s", path)
    return libs


def _symbol(lib: ctypes.CDLL, names: tuple[str, ...]) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    for name in names:
        func = getattr(lib, name, None)
        if func is not None:
            return func
    return None


@contextmanager
def limit_blas_threads(n: int = 1) -> Iterator[None]:
    """Run the block with at most `n` OpenBLAS threads, restoring the previous sizes after."""
    previous: list[tuple[ctypes._CFuncPtr, int]] = []  # type: ignore[name-defined]
    for lib in _openblas_libraries():
        setter, getter = _symbol(lib, _SETTERS), _symbol(lib, _GETTERS)
        if setter is None or getter is None:
            continue
        previous.append((setter, int(getter())))
        setter(ctypes.c_int(n))
    try:
        yield
    finally:
        for setter, count in previous:
            setter(ctypes.c_int(count))


def set_blas_threads(n: int = 1) -> None:
    """Worker-process initializer: set every OpenBLAS pool to `n` threads for the process life."""
    for lib in _openblas_libraries():
        setter = _symbol(lib, _SETTERS)
        if setter is not None:
            setter(ctypes.c_int(n))
