"""recnb: the mathematics of e-commerce recommendation, as tested PyTorch Lightning modules.

The package is organised bottom up, like the notebook course that teaches it; each folder is a layer
and imports only from the layers below it:

- :mod:`recnb.math`       -- primitives: cosine similarity, ranking, losses, hybrid blending, metric formulas
- :mod:`recnb.data`       -- the synthetic shop, MovieLens-100k, validation, cleaning, splits, DataModule
- :mod:`recnb.training`   -- the seeded Lightning ``Trainer``, data parallelism, DP-SGD and its accountant
- :mod:`recnb.models`     -- every recommender behind one interface (``fit``, ``score``, ``recommend``)
- :mod:`recnb.search`     -- lexical, dense and hybrid retrieval for queries; nearest-neighbour indexes
- :mod:`recnb.evaluation` -- metrics of fitted models on splits, bootstrap intervals and paired tests
- :mod:`recnb.policies`   -- re-ranking, explanations, bandits
- :mod:`recnb.studies`    -- simulations on the shop's truth, privacy, peer libraries
- :mod:`recnb.report`     -- ``record()`` for notebooks and the papermill report runner
"""

import os

# huggingface_hub reads this once, when it is first imported: set it before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# PyTorch backs CPU tensors of 2 MB and more with transparent huge pages when this is set (read at
# its first such allocation, so before the scoring below). Batched scoring allocates a fresh
# (1024, n_items) score block per batch -- 200 MB at 50,000 items -- and faulting it in 4 KB pages
# cost as much as the matrix product: the embedding model's full evaluation at 200,000 x 50,000
# went from 28 s to 17 s (benchmarks/scale.py). Results are unchanged. Set it to 0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
