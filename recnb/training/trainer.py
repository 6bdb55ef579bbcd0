"""Seeded, quiet, deterministic Lightning training on the CPU, in one process or several.

Every trained recnb model goes through :func:`make_trainer`, so one seed fixes the result and
notebooks stay free of Lightning's INFO lines and progress widgets unless asked for.

**Several processes** (``devices=2``, data-parallel DDP over the gloo backend on the CPU): the
strategy is Lightning's ``DDPStrategy``; :func:`ddp_strategy` picks how the worker processes start:

- ``"ddp_notebook"`` (the default for ``devices > 1``; also ``"ddp_fork"``): the calling process
  *forks* its workers. It works in a Jupyter kernel and under pytest alike, starts in a fraction of
  a second, and the trained weights (and the :class:`HistoryLogger` rows) of rank 0 come back to the
  calling process's model. Linux/macOS only (no ``fork`` on Windows).
- ``"ddp_spawn"``: workers started fresh and given a pickled copy of model and data; refused in
  notebooks by Lightning, and slow to start (every worker imports torch again).
- ``"ddp"``: Lightning re-runs the *command line* (``python script.py ...``) once per extra rank,
  and rank 0 is the calling process itself. This is the launch for scripts, ``torchrun`` and
  clusters (several machines: ``num_nodes=N`` and the environment variables ``MASTER_ADDR``,
  ``MASTER_PORT``, ``NODE_RANK``, ``WORLD_SIZE``); inside a notebook Lightning refuses it, and under
  pytest it would re-run the whole test session in each extra process.
"""

from __future__ import annotations

import logging
import warnings
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import DDPStrategy, Strategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.utilities import rank_zero_only


def quiet_lightning() -> None:
    """Silence Lightning's INFO banners and the warnings it gives for small CPU runs, and torch's
    notice that sparse invariant checks are off (Adagrad's sparse update builds its own tensors)."""
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
        ".*when logging on epoch level in distributed setting.*",
        ".*Total length of .* across ranks is zero.*",
        ".*Sparse invariant checks are implicitly disabled.*",
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


class _HistoryLauncher(_MultiProcessingLauncher):
    """Lightning's fork/spawn launcher, also sending rank 0's :class:`HistoryLogger` rows back.

    Lightning sends the trained weights and ``callback_metrics`` of rank 0 back to the calling
    process through ``get_extra_results`` / ``update_main_process_results`` (its documented hooks
    for extra state); the logged curves would otherwise stay in the worker that logged them.
    """

    def get_extra_results(self, trainer: pl.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        if isinstance(trainer.logger, HistoryLogger):
            extra["history_rows"] = list(trainer.logger._rows)
        return extra

    def update_main_process_results(self, trainer: pl.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        if isinstance(trainer.logger, HistoryLogger) and "history_rows" in extra:
            trainer.logger._rows = list(extra["history_rows"])


class _DDP(DDPStrategy):
    """``DDPStrategy`` whose fork/spawn launcher is :class:`_HistoryLauncher`."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _MultiProcessingLauncher):
            self._launcher = _HistoryLauncher(self, start_method=self._start_method)


#: strategy names :func:`ddp_strategy` knows, and the process start method each means
START_METHODS = {"ddp": "popen", "ddp_notebook": "fork", "ddp_fork": "fork", "ddp_spawn": "spawn"}


def ddp_strategy(name: str = "ddp_notebook") -> DDPStrategy:
    """Lightning's ``DDPStrategy`` on the gloo backend (the CPU one), started as ``name`` says.

    ``name``: ``"ddp_notebook"``/``"ddp_fork"`` (fork the calling process), ``"ddp_spawn"`` or
    ``"ddp"`` (re-run the command line); see the module doc for which works where.
    """
    if name not in START_METHODS:
        raise ValueError(f"strategy must be one of {sorted(START_METHODS)}, got {name!r}")
    return _DDP(process_group_backend="gloo", start_method=START_METHODS[name])


def check_threads(threads: Any) -> int:
    """``threads`` as an ``int`` if it is a positive integer (numpy integers too), else a ``ValueError``."""
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored after."""
    threads = check_threads(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchThreads(Callback):
    """Hold torch's intra-op thread count at ``threads`` while the trainer runs, then restore it.

    Set in ``setup`` and restored in ``teardown``, so a model trained with one thread does not
    leave the process scoring (e.g. ``evaluate``'s large matrix products) on one thread afterwards.
    """

    def __init__(self, threads: int) -> None:
        self.threads = check_threads(threads)
        self._before: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._before is not None:
            torch.set_num_threads(self._before)
            self._before = None


def make_trainer(
    max_epochs: int,
    seed: int = 0,
    progress: bool = False,
    logger: Logger | None = None,
    threads: int | None = 1,
    devices: int = 1,
    strategy: str | Strategy | None = None,
    **kwargs: Any,
) -> pl.Trainer:
    """A deterministic CPU ``Trainer``: seeds everything with ``seed`` first.

    ``progress`` turns Lightning's progress bar on (off by default: widget bars render badly in
    stored notebook outputs). ``logger`` defaults to a fresh :class:`HistoryLogger`; extra keyword
    arguments go to ``pl.Trainer`` (e.g. ``num_nodes``, ``callbacks``). ``threads``: torch's thread
    count *while the trainer runs* (a :class:`TorchThreads` callback; ``None`` leaves it): recnb's
    models are small, and one thread trains them many times faster than several threads contending
    on a laptop CPU; scoring afterwards gets the process's threads back.

    ``devices``: CPU processes. With ``devices > 1`` the strategy is data-parallel DDP over gloo,
    ``strategy`` naming the launch (a name of :data:`START_METHODS`, default ``"ddp_notebook"``, see
    the module doc) or any Lightning ``Strategy`` object. Lightning's own distributed sampler is off
    (``use_distributed_sampler=False``): :class:`~recnb.data.datamodule.InteractionDataModule`
    shards the training rows itself and every rank validates on every validation user.
    """
    quiet_lightning()
    if not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive integer, got {devices!r}")
    if isinstance(strategy, str) and strategy != "auto":
        strategy = ddp_strategy(strategy)
    elif strategy in (None, "auto"):
        strategy = ddp_strategy() if devices > 1 or kwargs.get("num_nodes", 1) > 1 else "auto"
    callbacks = list(kwargs.pop("callbacks", None) or [])
    if threads is not None:
        callbacks.append(TorchThreads(threads))
    pl.seed_everything(seed, workers=True, verbose=False)
    options: dict[str, Any] = dict(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        use_distributed_sampler=False,
        deterministic=True,
        logger=logger if logger is not None else HistoryLogger(),
        enable_progress_bar=progress,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    options.update(kwargs)
    return pl.Trainer(**options)
