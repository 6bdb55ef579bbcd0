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


def peak_rss_bytes() -> int:
    """Peak resident memory of this process in bytes (since the last :func:`reset_peak_rss`)."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
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
    """One measured stage: ``name``, wall ``seconds``, ``peak_rss`` bytes during it."""

    name: str
    seconds: float = float("nan")
    peak_rss: int = 0

    @property
    def peak_gib(self) -> float:
        return self.peak_rss / 2**30


@contextmanager
def measure(name: str, into: list[Stage] | None = None) -> Iterator[Stage]:
    """Time a ``with`` block and record its peak RSS: ``with measure("fit", stages) as s: ...``."""
    stage = Stage(name)
    reset_peak_rss()
    start = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = time.perf_counter() - start
        stage.peak_rss = peak_rss_bytes()
        if into is not None:
            into.append(stage)
