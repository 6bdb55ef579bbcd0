"""save / load, Lightning checkpoints and pickling: a loaded model scores and recommends as the saved one."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo import ALL, LIGHTNING, make, tiny_shop

import recnb
from recnb.models import base
from recnb.models.content import ContentRecommender
from recnb.models.ease import EASE
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.hybrid import HybridRecommender
from recnb.models.popularity import PopularityRecommender
from recnb.models.text_encoder import TfidfEncoder


@pytest.fixture(scope="module")
def shop():
    return tiny_shop()


@pytest.fixture(scope="module")
def fitted(shop):
    """name -> the zoo's model fitted on the tiny shop (fitted once for the module)."""
    cache: dict[str, base.Recommender] = {}

    def get(name: str) -> base.Recommender:
        if name not in cache:
            cache[name] = make(name, shop).fit(shop.split)
        return cache[name]

    return get


def assert_same_model(loaded: base.Recommender, model: base.Recommender) -> None:
    assert type(loaded) is type(model)
    assert torch.equal(loaded.score(), model.score())
    a, b = loaded.recommend(k=5), model.recommend(k=5)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.scores, b.scores)
    assert (loaded.seen_ != model.seen_).nnz == 0 and loaded.seen_.shape == model.seen_.shape
    assert np.array_equal(loaded.user_ids_, model.user_ids_) and np.array_equal(loaded.item_ids_, model.item_ids_)


@pytest.mark.parametrize("name", ALL)
def test_saved_model_loads_and_scores_identically(name, fitted, tmp_path):
    model = fitted(name)
    folder = model.save(tmp_path / name)
    meta = json.loads((folder / "model.json").read_text())
    assert meta["class"] == f"{type(model).__module__}:{type(model).__qualname__}"
    assert meta["recnb_version"] == recnb.__version__
    assert meta["sizes"] == {"n_users": model.n_users_, "n_items": model.n_items_}
    assert set(meta["params"]) == set(model.param_names())
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:  # nothing in it needs pickle
        assert all(arrays[key].dtype != object for key in arrays.files)
    assert_same_model(type(model).load(folder), model)
    assert_same_model(base.load(folder), model)  # the class read from the file


def test_the_hybrid_saves_its_components_nested(fitted, tmp_path):
    hybrid = fitted("hybrid")
    folder = hybrid.save(tmp_path / "hybrid")
    assert json.loads((folder / "model.json").read_text())["params"]["cf"] == {"__recommender__": "cf"}
    assert json.loads((folder / "cf" / "model.json").read_text())["class"] == "recnb.models.knn:ItemKNN"
    assert json.loads((folder / "content" / "model.json").read_text())["params"]["encoder"] == "tfidf"
    loaded = HybridRecommender.load(folder)
    assert torch.equal(loaded.cf.score(), hybrid.cf.score()) and torch.equal(loaded.content.score(), hybrid.content.score())
    assert (loaded.alpha, loaded.cold_alpha, loaded.cold_threshold) == (0.3, 0.8, 8)


def test_an_unfitted_model_round_trips_its_parameters(tmp_path):
    model = EmbeddingRecommender(embedding_dim=8, loss="bce", item_bias=True)
    loaded = base.load(model.save(tmp_path / "m"))
    assert loaded.get_params() == model.get_params() and loaded.seen_ is None
    assert loaded.user_embedding is None  # no sizes: no tables yet


def test_load_refuses_foreign_classes_and_wrong_types(fitted, tmp_path):
    folder = fitted("popularity").save(tmp_path / "pop")
    with pytest.raises(TypeError, match="holds a PopularityRecommender, not a EASE"):
        EASE.load(folder)
    meta = json.loads((folder / "model.json").read_text())
    # recnb.__main__ would run the command line, recnb.cli is not a model: neither is imported
    for foreign in ("os:system", "collections:OrderedDict", "recnbx.evil:Model", "recnb.__main__:X", "recnb.cli:main",
                    "recnb.data.schema:IdIndex"):
        (folder / "model.json").write_text(json.dumps({**meta, "class": foreign}))
        with pytest.raises(ValueError, match="only classes of recnb's models and studies"):
            base.load(folder)
    (folder / "model.json").write_text(json.dumps({**meta, "class": "recnb.models.text_encoder:TfidfEncoder"}))
    with pytest.raises(TypeError, match="TfidfEncoder, which is not a recnb recommender"):
        base.load(folder)
    with pytest.raises(FileNotFoundError, match="holds no model.json"):
        base.load(tmp_path / "nowhere")


def test_a_recnb_encoder_object_is_saved_by_its_parameters(shop, tmp_path):
    model = ContentRecommender(TfidfEncoder(min_df=2), neighbours=5).fit(shop.split)
    folder = model.save(tmp_path / "m")
    saved = json.loads((folder / "model.json").read_text())["params"]["encoder"]
    assert saved == {"__object__": "recnb.models.text_encoder:TfidfEncoder", "params": {"__dict__": {"min_df": 2}}}
    loaded = ContentRecommender.load(folder)
    assert isinstance(loaded.encoder, TfidfEncoder) and loaded.encoder.get_params() == {"min_df": 2}
    assert_same_model(loaded, model)


def test_saving_a_parameter_json_cannot_hold_is_a_clear_error(shop, tmp_path):
    class Letters:
        def encode(self, texts):
            return torch.tensor([[float(len(t)), 1.0] for t in texts])

    model = ContentRecommender(Letters()).fit(shop.split)
    with pytest.raises(TypeError, match=r"cannot save ContentRecommender params.encoder: a .*Letters is neither JSON"):
        model.save(tmp_path / "m")


@pytest.mark.parametrize("name", LIGHTNING)
def test_a_trainer_checkpoint_rebuilds_the_model(name, fitted, tmp_path):
    model = fitted(name)
    path = tmp_path / "model.ckpt"
    model.trainer_.save_checkpoint(path, weights_only=False)
    loaded = type(model).load_from_checkpoint(path, weights_only=True)  # no pickled object in it
    assert loaded.get_params() == model.get_params()
    assert_same_model(loaded, model)


@pytest.mark.parametrize("name", ALL)
def test_pickle_is_small_holds_no_trainer_or_split_and_scores_the_same(name, fitted, tmp_path):
    model = fitted(name)
    blob = pickle.dumps(model)
    for dragged in (b"Trainer", b"HistoryLogger", b"Split", b"DataModule"):  # class names a pickle would hold
        assert dragged not in blob
    saved = sum(f.stat().st_size for f in model.save(tmp_path / "m").rglob("*") if f.is_file())
    assert len(blob) < 2 * saved + 16_000, (len(blob), saved)  # with its Trainer, the embedding's was 68 kB
    restored = pickle.loads(blob)
    assert torch.equal(restored.score(), model.score())
    assert not hasattr(restored, "trainer_") or restored.trainer_ is None


def test_pickling_leaves_the_live_model_its_trainer(fitted):
    """Notebooks read ``model.trainer_.logger.history`` after ``fit``: only the pickle drops it."""
    model = fitted("embedding")
    pickle.dumps(model)
    assert "train_loss" in model.trainer_.logger.history.columns


def test_a_loaded_model_refits_like_a_fresh_one(fitted, shop, tmp_path):
    model = fitted("ease")
    loaded = base.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.fit(shop.split).score(), EASE(l2=50.0).fit(shop.split).score())
    assert isinstance(PopularityRecommender.load(PopularityRecommender().save(Path(tmp_path) / "p")), PopularityRecommender)


def test_saving_over_a_model_replaces_it_whole_and_never_a_foreign_folder(fitted, tmp_path):
    folder = tmp_path / "model"
    fitted("hybrid").save(folder)
    assert (folder / "cf").is_dir() and (folder / "content").is_dir()
    fitted("popularity").save(folder)  # the hybrid's sub-model folders must not survive
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "model.json"]
    assert type(base.load(folder)).__name__ == "PopularityRecommender"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved model"):
        fitted("popularity").save(other)
    assert (other / "todo.txt").read_text() == "mine"
