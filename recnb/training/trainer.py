"""Seeded, quiet, deterministic Lightning training on the CPU, in one process or several, that
leaves the calling process as it found it.

Every trained recnb model goes through :func:`make_trainer`, so one seed fixes the result and
notebooks stay free of Lightning's INFO lines and progress widgets unless asked for.

**Process state is scoped to the call.** A library call must not change the process it runs in.
:func:`scoped_fit_state` saves, and restores on *every* exit path (an exception raised inside
``training_step`` included), what a fit touches process-wide:

- torch's intra-op thread count;
- torch's deterministic-algorithms mode (with its ``warn_only`` flag), cuDNN's ``benchmark`` and
  ``deterministic`` flags, and the environment variables Lightning sets for them;
- the global generators: Python's ``random``, numpy's legacy global state, torch's CPU generator (and
  the CUDA ones if CUDA is initialised), with Lightning's ``PL_GLOBAL_SEED`` / ``PL_SEED_WORKERS``;
- warning filters and the levels of every existing logger;
- the ``SIGINT`` handler (Lightning ignores ``SIGINT`` after a ``KeyboardInterrupt`` in training).

Inside the scope it applies the run's settings: ``seed`` (``pl.seed_everything``), deterministic
mode, Lightning's banners and small-run warnings silenced. :class:`ScopedTrainer`, the ``Trainer``
:func:`make_trainer` returns, runs ``fit`` / ``validate`` / ``test`` / ``predict`` inside that scope,
so the model's seed still makes its result reproducible while the caller's own generators, threads,
deterministic mode, warning filters and logger levels come back untouched. ``make_trainer`` builds
the ``Trainer`` inside a scope as well (Lightning switches deterministic mode on or off when a
``Trainer`` is *constructed*).

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

Lightning sends rank 0's weights and ``callback_metrics`` back from forked or spawned workers; it
has no public hook for anything else (its ``get_extra_results`` / ``update_main_process_results``
live on the private ``_MultiProcessingLauncher``). The logged curves come back without it: when a
:class:`ScopedTrainer` runs on several processes, rank 0's :class:`HistoryLogger` also appends its
rows to a file in a temporary folder, which the calling process reads when the run returns.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import tempfile
import threading
import warnings
from argparse import Namespace
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import DDPStrategy, Strategy
from pytorch_lightning.utilities import rank_zero_only

#: the loggers Lightning's banners go to; :func:`quiet_lightning` raises them to ERROR
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")

#: the warnings :func:`quiet_lightning` ignores: Lightning's notes for small CPU runs, and torch's
#: notice that sparse invariant checks are off (Adagrad's sparse update builds its own tensors)
QUIET_WARNINGS = (
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
)

#: environment variables a fit may set: Lightning's seed (read again by DDP workers) and its
#: deterministic-mode settings
_SEED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")
_DETERMINISM_ENV = ("CUBLAS_WORKSPACE_CONFIG", "HOROVOD_FUSED_OPTIMIZER")

Deterministic = bool | Literal["warn"] | None

#: the largest seed ``pl.seed_everything`` takes (numpy's legacy generator: 32 bits)
MAX_SEED = 2**32 - 1


def check_threads(threads: Any) -> int:
    """``threads`` as an ``int`` if it is a positive integer (numpy integers too), else a ``ValueError``."""
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


# -- scoped process state ---------------------------------------------------------------------------


@contextmanager
def _environment_restored(names: tuple[str, ...]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _threads_restored() -> Iterator[None]:
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def _determinism_restored() -> Iterator[None]:
    mode, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        with _environment_restored(_DETERMINISM_ENV):
            yield
    finally:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


@contextmanager
def _generators_restored() -> Iterator[None]:
    python, legacy_numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        with _environment_restored(_SEED_ENV):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(legacy_numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _logger_levels() -> dict[str, int]:
    """Every existing logger's level, and Lightning's (NOTSET for one not created yet: the block
    may create it, and it must not keep the level the block gave it)."""
    loggers = {name: obj for name, obj in logging.root.manager.loggerDict.items() if isinstance(obj, logging.Logger)}
    levels = {name: logging.NOTSET for name in LIGHTNING_LOGGERS}
    return levels | {"": logging.root.level} | {name: obj.level for name, obj in loggers.items()}


@contextmanager
def _warnings_and_loggers_restored() -> Iterator[None]:
    levels = _logger_levels()
    try:
        with warnings.catch_warnings():  # filters and showwarning, restored on exit
            yield
    finally:
        for name, level in levels.items():
            logger = logging.getLogger(name or None)
            if logger.level != level:
                logger.setLevel(level)


@contextmanager
def _sigint_restored() -> Iterator[None]:
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:  # signal handlers can only be set from the main thread
        if (handler is not None and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not handler):
            signal.signal(signal.SIGINT, handler)


def quiet_lightning() -> None:
    """Raise Lightning's loggers (:data:`LIGHTNING_LOGGERS`) to ERROR and ignore the warnings of
    :data:`QUIET_WARNINGS`. Process-wide: call it inside :func:`scoped_fit_state` (which does, with
    ``quiet=True``), or inside your own ``warnings.catch_warnings()``, to keep it local."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@contextmanager
def scoped_fit_state(seed: int | None = None, deterministic: Deterministic = None, quiet: bool = True) -> Iterator[None]:
    """Run the block with the run's settings, and give the process back as it was on every exit path.

    Saved on entry and restored on exit, whether the block returns or raises (see the module doc):
    torch's thread count; deterministic mode (``warn_only`` too), cuDNN's flags and
    ``CUBLAS_WORKSPACE_CONFIG``; the states of Python's, numpy's and torch's global generators and
    ``PL_GLOBAL_SEED`` / ``PL_SEED_WORKERS``; warning filters and every existing logger's level; the
    ``SIGINT`` handler. Applied inside: ``seed`` (``pl.seed_everything(seed, workers=True)``: the
    global generators start from it, so code that draws from them -- dropout, say -- is
    reproducible; ``None`` leaves them), ``deterministic`` (``torch.use_deterministic_algorithms``;
    ``"warn"`` = warn only; ``None`` leaves it), and ``quiet`` (:func:`quiet_lightning`).

    Not restored: the CUDA generators when CUDA is first initialised inside the block (seeding then
    only queues a seed for them), and torch's inter-op thread count (it can be set once per process).
    """
    with ExitStack() as stack:
        stack.enter_context(_sigint_restored())
        stack.enter_context(_threads_restored())
        stack.enter_context(_determinism_restored())
        stack.enter_context(_generators_restored())
        stack.enter_context(_warnings_and_loggers_restored())
        if quiet:
            quiet_lightning()
        if deterministic is not None:
            torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")
        if seed is not None:
            pl.seed_everything(seed, workers=True, verbose=False)
        yield


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored after."""
    threads = check_threads(threads)
    with _threads_restored():
        torch.set_num_threads(threads)
        yield


class TorchThreads(Callback):
    """Hold torch's intra-op thread count at ``threads`` while the trainer runs, then restore it.

    Set in ``setup``, in every process of the run (spawned DDP workers included); restored in
    ``teardown`` and, since Lightning skips ``teardown`` when training raises, in ``on_exception``.
    A model trained with one thread does not leave the process scoring (e.g. ``evaluate``'s large
    matrix products) on one thread afterwards. :class:`ScopedTrainer` restores the count as well.
    """

    def __init__(self, threads: int) -> None:
        self.threads = check_threads(threads)
        self._before: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def _restore(self) -> None:
        if self._before is not None:
            torch.set_num_threads(self._before)
            self._before = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()


# -- the in-memory logger ---------------------------------------------------------------------------


class HistoryLogger(Logger):
    """A Lightning logger that keeps every logged metric in memory.

    ``history`` is a DataFrame with one row per logging step (columns ``step`` and the metric
    names); notebooks plot training curves from it without touching the file system. Under a
    multi-process :class:`ScopedTrainer` run, rank 0 also appends each row to a file the calling
    process reads back (see the module doc); nothing is written otherwise.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, float]] = []
        self._spool: str | None = None
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
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self._rows.append(row)
        if self._spool is not None:
            with open(self._spool, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    @property
    def history(self) -> pd.DataFrame:
        """One row per logged step; metrics logged at the same step are merged."""
        if not self._rows:
            return pd.DataFrame(columns=["step"])
        return pd.DataFrame(self._rows).groupby("step", as_index=False).first()


@contextmanager
def _rank_zero_rows(trainer: pl.Trainer) -> Iterator[None]:
    """On a multi-process run, spool the :class:`HistoryLogger` rows of rank 0 to a temporary file
    and load them into the calling process's loggers when the run returns (or raises)."""
    loggers = [lg for lg in trainer.loggers if isinstance(lg, HistoryLogger)]
    if trainer.world_size == 1 or not loggers:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="recnb-history-") as folder:
        paths = [str(Path(folder) / f"rows-{i}.jsonl") for i in range(len(loggers))]
        for lg, path in zip(loggers, paths):
            lg._spool = path
        try:
            yield
        finally:
            for lg, path in zip(loggers, paths):
                lg._spool = None
                if os.path.exists(path):
                    with open(path, encoding="utf-8") as f:
                        lg._rows = [json.loads(line) for line in f if line.endswith("\n")]  # whole rows only


# -- the trainer ------------------------------------------------------------------------------------


class ScopedTrainer(pl.Trainer):
    """A Lightning ``Trainer`` whose ``fit``, ``validate``, ``test`` and ``predict`` run inside
    :func:`scoped_fit_state` (``seed`` and ``deterministic`` as given here): the run is seeded and
    deterministic, and the calling process gets its threads, deterministic mode, generators,
    warning filters and logger levels back on every exit path. Build it with :func:`make_trainer`.

    ``seed``: the seed of the global generators during every run (``None``: left as they are);
    every other keyword argument goes to ``pl.Trainer``, ``deterministic`` included (its value is
    applied during runs only).
    """

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                                 or not 0 <= seed <= MAX_SEED):
            raise ValueError(f"seed must be an integer in 0..{MAX_SEED} or None, got {seed!r}")
        self.run_seed = None if seed is None else int(seed)
        self.run_deterministic: Deterministic = kwargs.get("deterministic")
        with scoped_fit_state():  # the constructor sets deterministic mode and cuDNN flags, and warns
            super().__init__(*args, **kwargs)

    def _scoped(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with scoped_fit_state(self.run_seed, self.run_deterministic), _rank_zero_rows(self):
            return run(*args, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> None:
        return self._scoped(super().fit, *args, **kwargs)

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        return self._scoped(super().validate, *args, **kwargs)

    def test(self, *args: Any, **kwargs: Any) -> Any:
        return self._scoped(super().test, *args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        return self._scoped(super().predict, *args, **kwargs)


#: strategy names :func:`ddp_strategy` knows, and the process start method each means
START_METHODS = {"ddp": "popen", "ddp_notebook": "fork", "ddp_fork": "fork", "ddp_spawn": "spawn"}


def ddp_strategy(name: str = "ddp_notebook") -> DDPStrategy:
    """Lightning's ``DDPStrategy`` on the gloo backend (the CPU one), started as ``name`` says.

    ``name``: ``"ddp_notebook"``/``"ddp_fork"`` (fork the calling process), ``"ddp_spawn"`` or
    ``"ddp"`` (re-run the command line); see the module doc for which works where.
    """
    if name not in START_METHODS:
        raise ValueError(f"strategy must be one of {sorted(START_METHODS)}, got {name!r}")
    return DDPStrategy(process_group_backend="gloo", start_method=START_METHODS[name])


def make_trainer(
    max_epochs: int,
    seed: int = 0,
    progress: bool = False,
    logger: Logger | None = None,
    threads: int | None = 1,
    devices: int = 1,
    strategy: str | Strategy | None = None,
    **kwargs: Any,
) -> ScopedTrainer:
    """A deterministic CPU :class:`ScopedTrainer`: every run is seeded with ``seed`` and leaves the
    process as it found it (see :func:`scoped_fit_state`).

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
    if not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive integer, got {devices!r}")
    if isinstance(strategy, str) and strategy != "auto":
        strategy = ddp_strategy(strategy)
    elif strategy in (None, "auto"):
        strategy = ddp_strategy() if devices > 1 or kwargs.get("num_nodes", 1) > 1 else "auto"
    callbacks = list(kwargs.pop("callbacks", None) or [])
    if threads is not None:
        callbacks.append(TorchThreads(threads))
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
    return ScopedTrainer(seed=seed, **options)
