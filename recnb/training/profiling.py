"""Wall time and peak resident memory (RSS) of stages of a run, for benchmarks and notebook 09.

Peak RSS is the largest resident set the process had: Linux's ``VmHWM`` in ``/proc/self/status``,
which :func:`reset_peak_rss` sets back to the current RSS (writing ``5`` to
``/proc/self/clear_refs``), so each stage gets its own peak. Elsewhere the fallback is
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the peak since the process started (then the peak of
a stage is only an upper bound). No tracing (``tracemalloc`` would slow the stage and miss
allocations made by numpy/torch in C).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_STATUS, _CLEAR = "/proc/self/status", "/proc/self/clear_refs"


def dense_matrix_bytes(n_rows: int, n_cols: int, itemsize: int = 4) -> int:
    """Bytes of a dense ``(n_rows, n_cols)`` array: ``n_rows · n_cols · itemsize`` (4 for float32)."""
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols), ("itemsize", itemsize)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return n_rows * n_cols * itemsize


def csr_bytes(n_rows: int, nnz: int, value_size: int = 4, index_size: int = 4) -> int:
    """Bytes of a CSR matrix: ``data`` and ``indices`` (``nnz`` each) plus ``indptr`` (``n_rows + 1``).

    ``nnz · (value_size + index_size) + (n_rows + 1) · index_size`` -- independent of the number of
    columns (scipy uses int32 indices while they fit, float32 values here).
    """
    for name, value in (("n_rows", n_rows), ("nnz", nnz), ("value_size", value_size), ("index_size", index_size)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return nnz * (value_size + index_size) + (n_rows + 1) * index_size


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident memory of this process in bytes (``VmRSS``; 0 where unknown)."""
    kib = _status_kib("VmRSS:")
    return 0 if kib is None else kib * 1024


def peak_rss_bytes() -> int:
    """Peak resident memory of this process in bytes (since the last :func:`reset_peak_rss`)."""
    kib = _status_kib("VmHWM:")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Set the peak back to the current RSS; ``False`` where the system cannot (non-Linux)."""
    try:
        with open(_CLEAR, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Stage:
    """One measured stage: ``name``, wall ``seconds``, ``peak_rss`` bytes during it, RSS at its start."""

    name: str
    seconds: float = float("nan")
    peak_rss: int = 0
    start_rss: int = 0

    @property
    def peak_gib(self) -> float:
        return self.peak_rss / 2**30

    @property
    def growth(self) -> int:
        """Bytes the stage needed above what the process held when it began: ``peak_rss - start_rss``."""
        return max(self.peak_rss - self.start_rss, 0)


@contextmanager
def measure(name: str, into: list[Stage] | None = None) -> Iterator[Stage]:
    """Time a ``with`` block and record its peak RSS: ``with measure("fit", stages) as s: ...``."""
    stage = Stage(name, start_rss=rss_bytes())
    reset_peak_rss()
    start = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = time.perf_counter() - start
        stage.peak_rss = peak_rss_bytes()
        if into is not None:
            into.append(stage)
