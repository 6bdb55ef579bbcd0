"""Training infrastructure, below the models that use it.

- :mod:`recnb.training.trainer` -- ``make_trainer`` (a seeded, quiet Lightning ``ScopedTrainer``
  whose runs leave the process as they found it: ``scoped_fit_state``), ``HistoryLogger``
  (in-memory curves), thread counts held only while training runs, DDP on CPU;
- :mod:`recnb.training.parallel` -- the all-reduce arithmetic of data parallelism;
- :mod:`recnb.training.profiling` -- wall time and peak memory of a stage;
- :mod:`recnb.training.dp_sgd`, :mod:`recnb.training.accountant` -- differentially private SGD
  (per-example gradients, clipping, Gaussian noise) and its RDP privacy accountant.
"""

from recnb.training.trainer import (
    HistoryLogger,
    ScopedTrainer,
    TorchThreads,
    check_threads,
    ddp_strategy,
    make_trainer,
    quiet_lightning,
    scoped_fit_state,
    torch_threads,
)

__all__ = ["HistoryLogger", "ScopedTrainer", "TorchThreads", "check_threads", "ddp_strategy", "make_trainer",
           "quiet_lightning", "scoped_fit_state", "torch_threads"]
