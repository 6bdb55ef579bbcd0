"""ContentRecommender: 001 §4.2.2 item-item content scores, checked by hand and on real text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from recnb.data.schema import IdIndex, Split
from recnb.models.content import (
    ContentRecommender,
    category_cosine,
    intra_inter_cosine,
    knn_category_accuracy,
    make_encoder,
)
from recnb.models.text_encoder import TextEncoder, TfidfEncoder


def make_split(
    items: pd.DataFrame, train: list[tuple[int, int, float]], test: list[tuple[int, int]] = (), n_users: int = 2
) -> Split:
    """A Split from (user, item, rating) triples given in index space (ids = indices)."""

    def frame(rows: list[tuple]) -> pd.DataFrame:
        u = [r[0] for r in rows]
        i = [r[1] for r in rows]
        return pd.DataFrame(
            {
                "user_id": np.array(u, dtype=np.int64),
                "item_id": np.array(i, dtype=np.int64),
                "timestamp": pd.to_datetime([0] * len(rows)),
                "event": ["purchase"] * len(rows),
                "rating": [r[2] if len(r) > 2 else np.nan for r in rows],
                "user_idx": np.array(u, dtype=np.int64),
                "item_idx": np.array(i, dtype=np.int64),
            }
        )

    return Split(
        train=frame(train),
        test=frame(list(test)),
        users=IdIndex(np.arange(n_users)),
        items=IdIndex(items["item_id"].to_numpy()),
        items_frame=items.reset_index(drop=True),
    )


class TableEncoder:
    """Looks each text up in a fixed table of vectors: makes similarities known in advance."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, texts):
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


VECS = {"a": [1.0, 0.0], "b": [3.0, 4.0], "c": [0.0, 2.0], "d": [-1.0, 1.0]}
ITEMS = pd.DataFrame({"item_id": [0, 1, 2, 3], "title": list("abcd"), "category": list("xxyy"), "text": list("abcd")})
# user 0 rated item 0 with 5 and item 2 with 1; user 1 rated item 1 with 4
TRAIN = [(0, 0, 5.0), (0, 2, 1.0), (1, 1, 4.0)]


def hand_cosines() -> np.ndarray:
    f = np.array(list(VECS.values()))
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return f @ f.T


@pytest.mark.parametrize("values", ["binary", "rating"])
@pytest.mark.parametrize("normalise", ["none", "count", "similarity"])
def test_score_is_the_documented_sum(values: str, normalise: str) -> None:
    model = ContentRecommender(TableEncoder(VECS), normalise=normalise, values=values).fit(make_split(ITEMS, TRAIN))
    sim = hand_cosines()
    expected = np.zeros((2, 4))
    for u in range(2):
        liked = [(j, r if values == "rating" else 1.0) for uu, j, r in TRAIN if uu == u]
        for i in range(4):
            s = sum(sim[i, j] * r for j, r in liked)
            z = {"none": 1.0, "count": len(liked), "similarity": sum(abs(sim[i, j]) for j, _ in liked)}[normalise]
            expected[u, i] = s / z
    np.testing.assert_allclose(model.score().numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(model.similarity_.numpy(), sim, atol=1e-6)
    # cos(a, b) = 3/5, cos(b, d) = 1/(5 sqrt 2): the document's formula on numbers we can check
    assert model.similarity_[0, 1].item() == pytest.approx(0.6)
    assert model.score([1]).shape == (1, 4)


def test_user_without_history_scores_zero() -> None:
    split = make_split(ITEMS, [(0, 0, 5.0)], n_users=2)
    for normalise in ("none", "count", "similarity"):
        scores = ContentRecommender(TableEncoder(VECS), normalise=normalise).fit(split).score([1])
        assert torch.equal(scores, torch.zeros(1, 4))


def test_neighbours_restrict_the_sum() -> None:
    model = ContentRecommender(TableEncoder(VECS), neighbours=1, normalise="none").fit(make_split(ITEMS, TRAIN))
    sim = hand_cosines()
    # item 3 (d) has nearest other item c (cos 1/sqrt2): user 0 (items a:1, c:1) scores sim(d, c)
    assert model.score([0])[0, 3].item() == pytest.approx(sim[3, 2], abs=1e-6)
    # item 1 (b)'s nearest other item is c (0.8 > 0.6), so a no longer counts
    assert model.score([0])[0, 1].item() == pytest.approx(sim[1, 2], abs=1e-6)


def test_profile_method_ranks_like_the_mean_similarity() -> None:
    rng = np.random.default_rng(0)
    table = {f"t{i}": rng.normal(size=8).tolist() for i in range(30)}
    items = pd.DataFrame({"item_id": range(30), "title": list(table), "category": "x", "text": list(table)})
    train = [(u, int(i), 1.0) for u in range(5) for i in rng.choice(30, size=4, replace=False)]
    split = make_split(items, train, n_users=5)
    item = ContentRecommender(TableEncoder(table), normalise="count").fit(split)
    profile = ContentRecommender(TableEncoder(table), method="profile").fit(split)
    p = split.train_matrix() @ item.item_embeddings_  # (U, d): the summed item vectors
    n_u = split.train_matrix().sum(dim=1, keepdim=True)
    # profile score = cos(p_u, F_i) = p_u . F_i / |p_u|; mean similarity = p_u . F_i / |N_u|
    torch.testing.assert_close(profile.score() * p.norm(dim=1, keepdim=True) / n_u, item.score(), atol=1e-5, rtol=0)
    assert torch.equal(profile.recommend(k=10).indices, item.recommend(k=10).indices)


def test_recommend_excludes_seen_items() -> None:
    model = ContentRecommender(TableEncoder(VECS)).fit(make_split(ITEMS, TRAIN))
    ranking = model.recommend([0], k=2)
    assert ranking.indices.tolist() == [[3, 1]] or ranking.indices.tolist() == [[1, 3]]
    sim = hand_cosines()
    mean = [(sim[i, 0] + sim[i, 2]) / 2 for i in (1, 3)]
    assert ranking.indices[0, 0].item() == (1 if mean[0] > mean[1] else 3)


def test_similar_items_excludes_itself() -> None:
    model = ContentRecommender(TableEncoder(VECS)).fit(make_split(ITEMS, TRAIN))
    top = model.similar_items([0, 3], k=2)
    sim = hand_cosines()
    for row, i in enumerate((0, 3)):
        order = [j for j in np.argsort(-sim[i], kind="stable") if j != i][:2]
        assert top.indices[row].tolist() == order



def test_similar_items_rejects_indices_out_of_range() -> None:
    model = ContentRecommender(TableEncoder(VECS)).fit(make_split(ITEMS, TRAIN))
    for bad in ([0, -1], [4]):  # 4 items: -1 must not mean "the last one"
        with pytest.raises(IndexError, match="items holds item index"):
            model.similar_items(bad, k=2)


@pytest.fixture(scope="module")
def shop() -> Split:
    texts = {
        "running": [
            "Lightweight running shoes with breathable mesh",
            "Cushioned road running trainers for marathon training",
            "Trail running sneakers with grippy outsole",
            "Men's jogging shoes, responsive foam midsole",
        ],
        "kitchen": [
            "Stainless steel frying pan, induction ready",
            "Nonstick saucepan with glass lid",
            "Cast iron skillet for searing steak",
            "Chef's knife, forged carbon steel blade",
        ],
        "audio": [
            "Wireless noise-cancelling over-ear headphones",
            "Bluetooth portable speaker, waterproof",
            "True wireless earbuds with charging case",
            "Hi-fi bookshelf speakers, pair",
        ],
    }
    rows = [(cat, t) for cat, ts in texts.items() for t in ts]
    new_shoe = "Women's running shoes for long distance races, breathable and light"
    rows.append(("running", new_shoe))
    titles = [t for _, t in rows]
    items = pd.DataFrame(
        {"item_id": range(len(rows)), "title": titles, "category": [c for c, _ in rows], "text": titles}
    )
    # user 0 bought three running shoes, user 1 two kitchen items and one speaker;
    # nobody has touched the new running shoe (item 12) nor items 3, 7, 11
    train = [(0, 0, 1.0), (0, 1, 1.0), (0, 2, 1.0), (1, 4, 1.0), (1, 5, 1.0), (1, 9, 1.0), (1, 8, 1.0)]
    return make_split(items, train, n_users=2)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> TextEncoder:
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("emb"))


@pytest.mark.parametrize("kind", ["minilm", "tfidf"])
def test_brand_new_item_is_recommended_from_its_text(shop: Split, minilm: TextEncoder, kind: str) -> None:
    new_item = shop.n_items - 1
    assert shop.seen_mask()[:, new_item].sum() == 0  # no interaction at all
    encoder = minilm if kind == "minilm" else TfidfEncoder()
    model = ContentRecommender(encoder).fit(shop)
    top = model.recommend([0], k=2).indices[0].tolist()
    assert top[0] == new_item
    if kind == "minilm":  # "jogging shoes" shares no word with "running shoes" (TF-IDF ranks a pan
        assert top[1] == 3  # "with glass lid" second): the encoder knows they mean the same
    assert model.item_embeddings_.shape[0] == shop.n_items


def test_minilm_embeddings_separate_categories(shop: Split, minilm: TextEncoder) -> None:
    emb = ContentRecommender(minilm).fit(shop).item_embeddings_
    labels = shop.items_frame["category"].to_numpy()
    intra, inter = intra_inter_cosine(emb, labels)
    assert intra > inter + 0.15
    assert knn_category_accuracy(emb, labels, k=3) >= 11 / 13


def test_intra_inter_cosine_by_hand() -> None:
    emb = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    intra, inter = intra_inter_cosine(emb, ["x", "x", "y"])
    r = 1 / np.sqrt(2)
    assert intra == pytest.approx(r)  # the one pair (0, 1)
    assert inter == pytest.approx((0.0 + r) / 2)  # pairs (0, 2), (1, 2)


def test_category_cosine_by_hand() -> None:
    emb = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    table = category_cosine(emb, ["y", "x", "y", "x"])  # x: items 1, 3; y: items 0, 2
    r = 1 / np.sqrt(2)
    assert list(table.index) == ["x", "y"] and list(table.columns) == ["x", "y"]
    assert table.loc["x", "x"] == pytest.approx(r)  # pair (1, 3)
    assert table.loc["y", "y"] == pytest.approx(0.0)  # pair (0, 2)
    assert table.loc["x", "y"] == pytest.approx((r + r + 0.0 + 1.0) / 4)  # 1-0, 1-2, 3-0, 3-2
    assert table.loc["y", "x"] == table.loc["x", "y"]


def test_knn_category_accuracy_by_hand_and_against_sklearn() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    labels = ["x", "x", "y", "y", "y"]
    # 1-NN: 0->1 (x), 1->0 (x), 2->3 (y), 3->2 (y) are right; item 4 (y) is equally close to
    # items 1 and 3 (cos 0.781 each), the tie goes to the lower index 1 (x): wrong
    assert knn_category_accuracy(emb, labels, k=1) == pytest.approx(4 / 5)
    # 2-NN: items 0 and 1 get one x and one y vote, the nearer (x) wins: right; item 4 again x
    assert knn_category_accuracy(emb, labels, k=2) == pytest.approx(4 / 5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6))
    y = rng.integers(0, 3, size=40)
    nn = NearestNeighbors(n_neighbors=1, metric="cosine").fit(x).kneighbors(return_distance=False)[:, 0]
    assert knn_category_accuracy(torch.tensor(x), y, k=1) == pytest.approx(np.mean(y[nn] == y))


def test_tfidf_encoder_is_refitted_on_the_split_catalogue(shop: Split) -> None:
    encoder = TfidfEncoder().fit(["words from another shop entirely"])
    model = ContentRecommender(encoder).fit(shop)
    # a copy is fitted on this catalogue; the encoder passed in keeps its own vocabulary
    assert "running" in model.encoder_.vectorizer.vocabulary_ and "shop" not in model.encoder_.vectorizer.vocabulary_
    assert "shop" in encoder.vectorizer.vocabulary_
    torch.testing.assert_close(model.item_embeddings_, TfidfEncoder().encode(shop.items_frame["text"].tolist()))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="'minilm', 'tfidf'"):
        make_encoder("bert")
    with pytest.raises(TypeError, match="encode"):
        make_encoder(object())
    with pytest.raises(ValueError, match="normalise"):
        ContentRecommender(TableEncoder(VECS), normalise="mean")
    with pytest.raises(RuntimeError, match="not fitted"):
        ContentRecommender(TableEncoder(VECS)).score()
    broken = ITEMS.assign(text=["a", None, "c", "d"])
    with pytest.raises(ValueError, match=r"item ids \[1\]"):
        ContentRecommender(TableEncoder(VECS)).fit(make_split(broken, TRAIN))
    with pytest.raises(ValueError, match="no column 'description'"):
        ContentRecommender(TableEncoder(VECS), text_column="description").fit(make_split(ITEMS, TRAIN))


@pytest.mark.parametrize("normalise", ["none", "count", "similarity"])
@pytest.mark.parametrize("neighbours", [1, 3, 7])
def test_pruned_sparse_similarity_equals_the_dense_cut(normalise: str, neighbours: int) -> None:
    import scipy.sparse as sp

    from recnb.math.ranking import keep_top_k_per_row, rank
    from recnb.math.similarity import all_vs_all
    from recnb.models.content import pruned_cosine

    rng = np.random.default_rng(neighbours)
    table = {f"t{i}": rng.integers(-2, 3, size=4).astype(float).tolist() for i in range(25)}  # ties and repeats
    items = pd.DataFrame({"item_id": range(25), "title": list(table), "category": "x", "text": list(table)})
    train = [(u, int(i), float(rng.integers(1, 6))) for u in range(6) for i in rng.choice(25, size=5, replace=False)]
    split = make_split(items, train, n_users=6)
    model = ContentRecommender(TableEncoder(table), neighbours=neighbours, normalise=normalise, values="rating").fit(split)
    assert sp.issparse(model.similarity_) and model.similarity_.getnnz(axis=1).max() <= neighbours
    # the former dense code: prune the full (n, n) cosine, then R sim^T over dense rows
    emb = model.item_embeddings_
    dense = keep_top_k_per_row(all_vs_all(emb, emb), neighbours)
    np.testing.assert_allclose(model.similarity_.toarray(), dense.numpy(), atol=1e-6)
    np.testing.assert_array_equal(pruned_cosine(emb, neighbours, block=4).toarray(), model.similarity_.toarray())
    r = split.train_matrix("rating")
    raw = r @ dense.T
    want = {"none": raw, "count": raw / (r != 0).sum(1, keepdim=True).clamp(min=1)}.get(normalise)
    if want is None:
        z = (r != 0).float() @ dense.abs().T
        want = torch.where(z > 0, raw / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(raw))
    np.testing.assert_allclose(model.score().numpy(), want.numpy(), atol=1e-5)
    assert torch.equal(model.recommend(k=5).indices, rank(want, k=5, exclude=split.seen_mask()).indices)
    # similar_items ranks the cosine before the cut: with neighbours=1 the second neighbour is still real
    assert torch.equal(model.similar_items([0, 3], k=2).indices,
                       rank(all_vs_all(emb, emb)[[0, 3]], k=2, exclude=torch.eye(25, dtype=torch.bool)[[0, 3]]).indices)


@pytest.mark.parametrize("normalise", ["none", "count", "similarity"])
@pytest.mark.parametrize("neighbours", [None, 3])
def test_contributions_sum_to_the_score(normalise: str, neighbours: int | None) -> None:
    rng = np.random.default_rng(7)
    table = {f"t{i}": rng.normal(size=6).tolist() for i in range(20)}
    items = pd.DataFrame({"item_id": range(20), "title": list(table), "category": "x", "text": list(table)})
    train = [(u, int(i), float(rng.integers(1, 6))) for u in range(5) for i in rng.choice(20, size=4, replace=False)]
    model = ContentRecommender(TableEncoder(table), neighbours=neighbours, normalise=normalise, values="rating")
    model.fit(make_split(items, train, n_users=6))  # user 5 has no history: no terms, score 0
    for user in range(6):
        terms = model.contributions(user, range(20))
        total = np.bincount(terms["item"], weights=terms["contribution"], minlength=20)
        np.testing.assert_allclose(total, model.score([user])[0].double().numpy(), rtol=1e-6, atol=1e-6)
        assert set(terms["contributor"]) <= {j for u, j, _ in train if u == user}


def test_contributions_by_hand_and_profile_refused() -> None:
    model = ContentRecommender(TableEncoder(VECS), normalise="count", values="rating").fit(make_split(ITEMS, TRAIN))
    sim = hand_cosines()
    terms = model.contributions(0, [1])  # user 0: item 0 rated 5, item 2 rated 1; |N_0| = 2
    assert terms["contributor"].tolist() == [0, 2]
    np.testing.assert_allclose(terms["similarity"], [sim[1, 0], sim[1, 2]], atol=1e-6)
    np.testing.assert_allclose(terms["contribution"], [sim[1, 0] * 5 / 2, sim[1, 2] * 1 / 2], atol=1e-6)
    with pytest.raises(ValueError, match="profile"):
        ContentRecommender(TableEncoder(VECS), method="profile").fit(make_split(ITEMS, TRAIN)).contributions(0, [1])
