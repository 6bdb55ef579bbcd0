"""The canonical form of recommendation data, and the train/test split every model consumes.

Frames (pandas), one row per record:

``interactions``
    ``user_id`` (int64), ``item_id`` (int64), ``timestamp`` (datetime64[ns]), ``event`` (str:
    ``view``/``click``/``cart``/``purchase`` for the shop, ``rating`` for MovieLens, ``matrix`` for
    :meth:`Split.from_matrix`), ``rating`` (float64, an explicit 1..5 rating, NaN where the event
    carries none), ``session_id`` (int64, optional).
``items``
    ``item_id`` (int64, unique), ``title`` (str), ``category`` (str), ``text`` (str: the text a
    content model reads), plus whatever else the source has (``brand``, ``price``, ``genres``...).
``users``
    ``user_id`` (int64, unique), plus whatever else the source has.

Models never see raw ids: :class:`IdIndex` maps them to contiguous indices ``0..n-1`` and back,
and :class:`Split` carries ``user_idx`` / ``item_idx`` columns next to the ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

USER, ITEM, TIME, EVENT, RATING, SESSION = "user_id", "item_id", "timestamp", "event", "rating", "session_id"
USER_IDX, ITEM_IDX = "user_idx", "item_idx"
INTERACTION_COLUMNS = (USER, ITEM, TIME, EVENT, RATING)
ITEM_COLUMNS = (ITEM, "title", "category", "text")


@dataclass(frozen=True)
class RecData:
    """One data set in canonical form (see the module docstring for the columns).

    ``truth`` holds what generated the data when it is synthetic (e.g. ``user_taste``, an
    ``(n_users, n_categories)`` array in ``users`` row order), so notebooks can compare what a
    model learned with the truth; it is empty for real data.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdIndex:
    """A bijection between raw ids and contiguous indices ``0..n-1`` (sorted by id)."""

    ids: np.ndarray

    @classmethod
    def from_ids(cls, ids: Any) -> IdIndex:
        return cls(np.unique(np.asarray(ids)))

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, known)`` of ``ids`` (same shape): ``positions[j]`` is the index of ``ids[j]``
        where ``known[j]`` is True, and meaningless elsewhere. Binary search in the sorted ``ids``."""
        ids = np.asarray(ids)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        known = self.ids[pos] == ids if len(self.ids) else np.zeros(ids.shape, bool)
        return pos, known

    def index(self, ids: Any) -> np.ndarray:
        """Indices of ``ids``; raises ``KeyError`` naming the first unknown id."""
        pos, known = self.lookup(ids)
        if not np.all(known):
            raise KeyError(f"unknown id {np.asarray(ids)[~known].flat[0].item()!r}: not among the {len(self.ids)} known ids")
        return pos

    def id(self, indices: Any) -> np.ndarray:
        """Raw ids of ``indices``."""
        return self.ids[np.asarray(indices)]


@dataclass(frozen=True)
class Split:
    """A train/test split in index space: what every recommender's ``fit`` takes.

    ``train`` and ``test`` are interaction frames with ``user_idx`` and ``item_idx`` columns added.
    ``users`` and ``items`` index every user and item of the data set (items with no interaction
    included, so content models can recommend them); ``items_frame`` holds the item rows in
    index order.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    users: IdIndex
    items: IdIndex
    items_frame: pd.DataFrame
    name: str = ""

    @classmethod
    def from_matrix(cls, matrix: sp.sparray | sp.spmatrix, name: str = "matrix") -> Split:
        """The Split of a user-item matrix: what a recommender's ``fit`` makes of a sparse matrix.

        ``matrix``: scipy sparse ``(n_users, n_items)`` (CSR, or any format ``csr_matrix`` takes);
        each stored non-zero entry ``r_ui`` is one training interaction of user ``u`` with item
        ``i`` whose ``rating`` is ``r_ui`` (explicit zeros are dropped, duplicates summed), so
        ``train_csr("rating")`` gives the matrix back as float32 and ``train_csr("binary")`` its
        pattern. Ids are the indices (``user_id = user_idx`` in ``0..n_users-1``, the same for
        items), the test part is empty, timestamps are NaT, events ``"matrix"``, and ``items_frame``
        has empty ``title`` / ``category`` / ``text``.
        """
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy.sparse (n_users, n_items) matrix, got {type(matrix).__name__}")
        csr = sp.csr_matrix(matrix, dtype=np.float64)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        if not np.isfinite(csr.data).all():
            raise ValueError(f"matrix holds {int((~np.isfinite(csr.data)).sum())} non-finite value(s) (NaN or inf)")
        n_users, n_items = csr.shape
        coo = csr.tocoo()
        u, i = coo.row.astype(np.int64), coo.col.astype(np.int64)
        train = pd.DataFrame({USER: u, ITEM: i, TIME: pd.NaT, EVENT: "matrix", RATING: coo.data, USER_IDX: u, ITEM_IDX: i})
        test = train.iloc[:0].copy()
        items = IdIndex(np.arange(n_items, dtype=np.int64))
        frame = pd.DataFrame({ITEM: items.ids, "title": "", "category": "", "text": ""})
        return cls(train, test, IdIndex(np.arange(n_users, dtype=np.int64)), items, frame, name=name)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def train_csr(self, values: str = "binary") -> sp.csr_matrix:
        """Sparse ``(n_users, n_items)`` float32 CSR matrix of the training interactions.

        ``values="binary"``: 1 where the user interacted with the item (any number of times).
        ``values="rating"``: the mean explicit rating of the pair; pairs with no rating are absent.
        Canonical (sorted indices, no duplicates) and cached: do not modify it in place.
        """
        if values == "binary":
            return self._train_binary
        if values == "rating":
            return self._train_rating
        raise ValueError(f"values must be 'binary' or 'rating', got {values!r}")

    def test_csr(self) -> sp.csr_matrix:
        """Sparse ``(n_users, n_items)`` float32 CSR matrix of the held-out items (1 = held out)."""
        return self._test_binary

    def relevant_csr(self) -> sp.csr_matrix:
        """The held-out pairs that are not training pairs (what evaluation counts as relevant):
        ``test_csr()`` minus ``seen_csr()``, canonical and cached."""
        return self._relevant

    def seen_csr(self) -> sp.csr_matrix:
        """The training items of each user (what ``recommend`` excludes): ``train_csr("binary")``."""
        return self._train_binary

    def item_counts(self) -> np.ndarray:
        """``(n_items,)`` int64: the number of training users of each item (its popularity)."""
        return np.asarray(self._train_binary.getnnz(axis=0), dtype=np.int64)

    def user_counts(self) -> np.ndarray:
        """``(n_users,)`` int64: the number of distinct training items of each user."""
        return np.asarray(self._train_binary.getnnz(axis=1), dtype=np.int64)

    @cached_property
    def _train_binary(self) -> sp.csr_matrix:
        return _csr(self.train, self.n_users, self.n_items, "binary")

    @cached_property
    def _train_rating(self) -> sp.csr_matrix:
        return _csr(self.train, self.n_users, self.n_items, "rating")

    @cached_property
    def _relevant(self) -> sp.csr_matrix:
        test = self._test_binary
        out = (test - test.multiply(self._train_binary)).tocsr()
        out.eliminate_zeros()
        out.sort_indices()
        return out

    @cached_property
    def _test_binary(self) -> sp.csr_matrix:
        return _csr(self.test, self.n_users, self.n_items, "binary")

    # Dense views, for small teaching examples only: O(n_users * n_items) memory.
    def train_matrix(self, values: str = "binary") -> torch.Tensor:
        """Dense ``(n_users, n_items)`` float32 view of :meth:`train_csr` (small data only)."""
        return torch.from_numpy(self.train_csr(values).toarray())

    def test_matrix(self) -> torch.Tensor:
        """Dense ``(n_users, n_items)`` bool view of :meth:`test_csr` (small data only)."""
        return torch.from_numpy(self.test_csr().toarray() > 0)

    def seen_mask(self) -> torch.Tensor:
        """Dense ``(n_users, n_items)`` bool view of :meth:`seen_csr` (small data only)."""
        return torch.from_numpy(self.seen_csr().toarray() > 0)

    @property
    def test_users(self) -> np.ndarray:
        """Indices of users with at least one held-out item, sorted."""
        return np.unique(self.test[USER_IDX].to_numpy())

    @property
    def cold_users(self) -> np.ndarray:
        """Test users with no training interaction."""
        return np.setdiff1d(self.test_users, np.unique(self.train[USER_IDX].to_numpy()))

    @property
    def cold_items(self) -> np.ndarray:
        """Items that appear in test but never in train."""
        return np.setdiff1d(np.unique(self.test[ITEM_IDX].to_numpy()), np.unique(self.train[ITEM_IDX].to_numpy()))


#: what every recommender's ``fit`` takes: a Split, or a sparse user-item matrix (:meth:`Split.from_matrix`)
SplitLike = Split | sp.sparray | sp.spmatrix


def as_split(data: SplitLike) -> Split:
    """``data`` itself if it is a :class:`Split`, else :meth:`Split.from_matrix` of the sparse matrix."""
    if isinstance(data, Split):
        return data
    if sp.issparse(data):
        return Split.from_matrix(data)
    raise TypeError(f"split must be a Split or a scipy.sparse (n_users, n_items) matrix, got {type(data).__name__}")


def dense_rows(matrix: sp.csr_matrix, rows: Any, dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """Rows ``rows`` of a CSR matrix as a dense ``(len(rows), n_cols)`` tensor.

    ``dtype=torch.bool``: True where the entry is non-zero (a seen or held-out mask); a float dtype:
    the stored values (e.g. ratings), 0 elsewhere. This is how batched code turns the sparse
    matrices into per-batch blocks: memory is ``len(rows) * n_cols``, never the whole matrix.
    """
    block = matrix[np.asarray(rows, dtype=np.int64).reshape(-1)]
    if dtype == torch.bool:
        out = np.zeros(block.shape, dtype=bool)
        coo = block.tocoo()
        out[coo.row, coo.col] = coo.data != 0
        return torch.from_numpy(out)
    return torch.from_numpy(block.toarray()).to(dtype)


def _csr(frame: pd.DataFrame, n_users: int, n_items: int, values: str) -> sp.csr_matrix:
    """CSR of ``frame``'s ``(user_idx, item_idx)`` pairs: 1.0 per pair, or the pair's mean rating."""
    shape = (n_users, n_items)
    if values == "rating":
        frame = frame.loc[frame[RATING].notna()]
    if frame.empty:
        return sp.csr_matrix(shape, dtype=np.float32)
    u = frame[USER_IDX].to_numpy(np.int64)
    i = frame[ITEM_IDX].to_numpy(np.int64)
    key = u * n_items + i
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    if values == "binary":
        data = np.ones(len(uniq), dtype=np.float32)
    else:
        data = (np.bincount(inverse, weights=frame[RATING].to_numpy(np.float64)) / counts).astype(np.float32)
    out = sp.csr_matrix((data, (uniq // n_items, uniq % n_items)), shape=shape, dtype=np.float32)
    out.sort_indices()
    return out
