"""Reports: :func:`record` for notebooks, and the papermill runner behind ``recnb report``."""

from recnb.report.record import record

__all__ = ["record"]
