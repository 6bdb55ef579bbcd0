"""Seeded, quiet, deterministic Lightning training on the CPU.

Every trained recnb model goes through :func:`make_trainer`, so one seed fixes the result and
notebooks stay free of Lightning's INFO lines and progress widgets unless asked for.
"""

from __future__ import annotations

import logging
import warnings
from argparse import Namespace
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only


def quiet_lightning() -> None:
    """Silence Lightning's INFO banners and the warnings it gives for small CPU runs."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*GPU available but not used.*",
        ".*TPU available but not used.*",
        ".*exists and is not empty.*",
        ".*LeafSpec.*",
        ".*isinstance.*treespec.*",
        ".*smaller than the logging interval.*",
        ".*Checkpoint directory.*",
        ".*Trying to infer the `batch_size`.*",
        ".*but have no `validation_step`.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


class HistoryLogger(Logger):
    """A Lightning logger that keeps every logged metric in memory.

    ``history`` is a DataFrame with one row per logging step (columns ``step`` and the metric
    names); notebooks plot training curves from it without touching the file system.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, float]] = []
        self.hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return "history"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.hparams.update(vars(params) if isinstance(params, Namespace) else dict(params))

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._rows.append({"step": step, **{k: float(v) for k, v in metrics.items()}})

    @property
    def history(self) -> pd.DataFrame:
        """One row per logged step; metrics logged at the same step are merged."""
        if not self._rows:
            return pd.DataFrame(columns=["step"])
        return pd.DataFrame(self._rows).groupby("step", as_index=False).first()


def make_trainer(
    max_epochs: int,
    seed: int = 0,
    progress: bool = False,
    logger: Logger | None = None,
    threads: int | None = 1,
    **kwargs: Any,
) -> pl.Trainer:
    """A deterministic CPU ``Trainer``: seeds everything with ``seed`` first.

    ``progress`` turns Lightning's progress bar on (off by default: widget bars render badly in
    stored notebook outputs). ``logger`` defaults to a fresh :class:`HistoryLogger`; extra keyword
    arguments go to ``pl.Trainer``. ``threads`` sets ``torch.set_num_threads`` for the process
    (``None`` leaves it): recnb's models are small, and one thread trains them many times faster
    than several threads contending on a laptop CPU.
    """
    quiet_lightning()
    if threads is not None:
        torch.set_num_threads(threads)
    pl.seed_everything(seed, workers=True, verbose=False)
    options: dict[str, Any] = dict(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=logger if logger is not None else HistoryLogger(),
        enable_progress_bar=progress,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)
