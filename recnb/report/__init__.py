"""Reports: :func:`record` for notebooks, the papermill runner behind ``recnb report``, and sweeps
(:func:`sweep` runs a notebook over parameters x seeds, :func:`load_sweep` reads one back)."""

from recnb.report.aggregate import Sweep, load_sweep
from recnb.report.record import record
from recnb.report.sweeps import sweep

__all__ = ["Sweep", "load_sweep", "record", "sweep"]
