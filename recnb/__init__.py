"""recnb: the mathematics of e-commerce recommendation, as tested PyTorch Lightning modules.

The package is organised bottom up, like the notebook course that teaches it:

- :mod:`recnb.math`    -- primitives: cosine similarity, ranking, losses, hybrid blending
- :mod:`recnb.data`    -- the synthetic shop, MovieLens-100k, validation, cleaning, splits, DataModule
- :mod:`recnb.models`  -- every recommender behind one interface (``fit``, ``score``, ``recommend``)
- :mod:`recnb.metrics` -- ranking and rating metrics, vectorised over users
- :mod:`recnb.report`  -- ``record()`` for notebooks and the papermill report runner
"""

import os

# huggingface_hub reads this once, when it is first imported: set it before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
