"""Training infrastructure, below the models that use it.

- :mod:`recnb.training.trainer` -- ``make_trainer`` (a seeded, quiet Lightning ``Trainer``),
  ``HistoryLogger`` (in-memory curves), thread counts held only while training runs, DDP on CPU;
- :mod:`recnb.training.parallel` -- the all-reduce arithmetic of data parallelism;
- :mod:`recnb.training.profiling` -- wall time and peak memory of a stage;
- :mod:`recnb.training.dp_sgd`, :mod:`recnb.training.accountant` -- differentially private SGD
  (per-example gradients, clipping, Gaussian noise) and its RDP privacy accountant.
"""

from recnb.training.trainer import (
    HistoryLogger,
    TorchThreads,
    check_threads,
    ddp_strategy,
    make_trainer,
    torch_threads,
)

__all__ = ["HistoryLogger", "TorchThreads", "check_threads", "ddp_strategy", "make_trainer", "torch_threads"]
