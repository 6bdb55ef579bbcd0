"""Saving and loading recommenders without pickle: parameters and sizes as JSON, arrays in ``.npz``.

A saved model is a folder::

    model.json    {"format": 1, "class": "recnb.models.ease:EASE", "recnb_version": "0.1.0",
                   "sizes": {"n_users": 943, "n_items": 1682}, "params": {...}, "state": {...},
                   "module": [...]}   (the state_dict keys of a torch module, [] otherwise)
    arrays.npz    every array of the parameters and of the fitted state (numpy's format, read with
                  ``allow_pickle=False``); a scipy sparse matrix as its CSR parts
                  ``<key>.data``, ``<key>.indices``, ``<key>.indptr``
    <name>/       a parameter that is itself a recommender (the hybrid's ``cf`` and ``content``),
                  saved the same way, fitted state included

``params`` are the model's ``get_params()``; ``state`` its fitted attributes (the names ending in
``_``: ``seen_``, ``weights_``, ... -- see :meth:`recnb.models.base.Recommender.fitted_state`) and,
for a ``torch.nn.Module``, its ``state_dict`` (under ``module.``). Values are written as JSON where
JSON can hold them, with a tag where it cannot: ``{"__tuple__": [...]}``, ``{"__dict__": {...}}``
(a dict, whatever its keys spell), ``{"__array__": key, "as": "numpy" | "torch"}``,
``{"__sparse__": key, "shape": [n, m]}``, ``{"__path__": "..."}``, ``{"__recommender__": name}``
(a sub-folder) and ``{"__object__": "module:qualname", "params": {...}}`` for a recnb object that
has ``get_params`` (an encoder; an :class:`~recnb.data.schema.IdIndex` by its ``fields``). Nothing
is pickled: no Trainer, no Split, no code.

:func:`load_model` imports the class that ``model.json`` names only if its module is in
:data:`LOADABLE_PACKAGES` (recnb's models, studies and search) and refuses any other (and a recnb
class that is no recommender), so a saved file cannot make the loader run other code.
:func:`save_model` writes into a fresh sibling folder and swaps it in at the end, so an interrupted
save leaves the old model (or nothing), never half of one, and no stale sub-model survives.
Lightning checkpoints carry the same fitted state (:func:`checkpoint_state` /
:func:`state_from_checkpoint`), as tensors and plain containers that ``torch.load(weights_only=True)``
reads (an array of strings, such as raw ids, as ``{"__list__": [...]}``).
"""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import recnb
from recnb.data.schema import IdIndex

FORMAT = 1
META = "model.json"
ARRAYS = "arrays.npz"
#: tags of the JSON encoding (see the module docstring)
TAGS = ("__tuple__", "__dict__", "__array__", "__list__", "__sparse__", "__path__", "__recommender__", "__object__")


#: the packages a saved model's class may come from: importing them runs no program (unlike ``recnb.__main__``)
LOADABLE_PACKAGES = ("recnb.models.", "recnb.studies.", "recnb.search.")


def class_path(cls: type) -> str:
    """``module:qualname`` of a class, as ``model.json`` names it."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_class(path: str, where: str = "") -> type:
    """The class named ``module:qualname``, imported only if ``module`` is in :data:`LOADABLE_PACKAGES`."""
    module, _, qualname = str(path).partition(":")
    if not qualname or not module.startswith(LOADABLE_PACKAGES):
        raise ValueError(f"{where or 'the file'} names the class {path!r}: only classes of recnb's models and studies "
                         f"(modules {', '.join(p + '…' for p in LOADABLE_PACKAGES)}) are loaded, nothing else is imported")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"{where or 'the file'} names the class {path!r}, which {module} does not define")
    if not isinstance(obj, type):
        raise TypeError(f"{where or 'the file'} names {path!r}, which is not a class")
    return obj


def _is_recommender(value: Any) -> bool:
    return hasattr(value, "fitted_state") and hasattr(value, "get_params") and not isinstance(value, type)


class _Writer:
    """Turns values into JSON, collecting arrays (``key -> ndarray``) and writing sub-models into ``folder``."""

    def __init__(self, folder: Path | None, owner: str, string_arrays_as_lists: bool = False) -> None:
        self.folder, self.owner = folder, owner
        self.arrays: dict[str, np.ndarray] = {}
        self.string_arrays_as_lists = string_arrays_as_lists

    def array(self, key: str, value: np.ndarray) -> np.ndarray | list:
        if value.dtype == object:  # raw ids held as Python objects: strings or numbers
            kinds = {type(v) for v in value.ravel().tolist()}
            if kinds <= {str}:
                value = value.astype(str)
            elif kinds <= {int, float, bool}:
                value = np.asarray(value.tolist())
            else:
                raise TypeError(f"cannot save {self.owner} {key}: an object array holding {sorted(k.__name__ for k in kinds)}")
        if self.string_arrays_as_lists and value.dtype.kind in "US":
            return value.tolist()
        self.arrays[key] = np.ascontiguousarray(value)
        return value

    def encode(self, value: Any, key: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"cannot save {self.owner} {key}: a dict whose keys are not all strings")
            return {"__dict__": {k: self.encode(v, f"{key}.{k}") for k, v in value.items()}}
        if isinstance(value, Path):
            return {"__path__": str(value)}
        if isinstance(value, torch.Tensor):
            self.array(key, value.detach().cpu().numpy())
            return {"__array__": key, "as": "torch"}
        if isinstance(value, np.ndarray):
            stored = self.array(key, value)
            return {"__array__": key, "as": "numpy"} if not isinstance(stored, list) else {"__list__": stored}
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            for part in ("data", "indices", "indptr"):
                self.array(f"{key}.{part}", getattr(csr, part))
            return {"__sparse__": key, "shape": list(csr.shape)}
        if isinstance(value, IdIndex):
            return {"__object__": class_path(type(value)), "fields": {"ids": self.encode(value.ids, f"{key}.ids")}}
        if _is_recommender(value):
            if self.folder is None:
                raise TypeError(f"cannot put the recommender {self.owner} {key} in a checkpoint: save the model instead")
            name = key.removeprefix("params.")
            save_model(value, self.folder / name)
            return {"__recommender__": name}
        if hasattr(value, "get_params") and type(value).__module__.split(".")[0] == "recnb":
            return {"__object__": class_path(type(value)), "params": self.encode(value.get_params(), f"{key}.params")}
        raise TypeError(
            f"cannot save {self.owner} {key}: a {type(value).__module__}.{type(value).__qualname__} is neither JSON, an "
            f"array, a sparse matrix, a recommender nor a recnb object with get_params (pass a name such as "
            f"encoder='tfidf', or list the attribute in _transient_attributes if scoring does not need it)")


class _Reader:
    """The inverse of :class:`_Writer`: JSON + arrays (+ sub-model folders) back to values."""

    def __init__(self, arrays: Any, folder: Path | None, where: str) -> None:
        self.arrays, self.folder, self.where = arrays, folder, where

    def array(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise ValueError(f"{self.where}: the array {key!r} is missing from {ARRAYS}")
        value = self.arrays[key]
        return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        tags = [t for t in TAGS if t in value]
        if len(tags) != 1:
            raise ValueError(f"{self.where}: a JSON object without exactly one recnb tag ({', '.join(TAGS)}): {value!r}"[:300])
        tag = tags[0]
        if tag == "__tuple__":
            return tuple(self.decode(v) for v in value[tag])
        if tag == "__dict__":
            return {k: self.decode(v) for k, v in value[tag].items()}
        if tag == "__path__":
            return Path(value[tag])
        if tag == "__list__":
            return np.asarray(value[tag])
        if tag == "__array__":
            array = self.array(value[tag])
            return torch.from_numpy(array) if value.get("as") == "torch" else array
        if tag == "__sparse__":
            key = value[tag]
            parts = [self.array(f"{key}.{p}") for p in ("data", "indices", "indptr")]
            return sp.csr_matrix(tuple(parts), shape=tuple(value["shape"]))
        if tag == "__recommender__":
            if self.folder is None:
                raise ValueError(f"{self.where}: a sub-model {value[tag]!r} cannot be read without its folder")
            return load_model(self.folder / value[tag])
        cls = resolve_class(value[tag], self.where)
        if "fields" in value and cls is IdIndex:
            return cls(**{k: self.decode(v) for k, v in value["fields"].items()})
        if "params" in value and hasattr(cls, "get_params"):
            return cls(**self.decode(value["params"]))
        raise ValueError(f"{self.where}: {value[tag]!r} is neither an IdIndex nor a recnb class with get_params")


def save_model(model: Any, path: str | Path) -> Path:
    """Write ``model`` (a recommender) as the folder ``path``, replacing a model saved there before. Returns it.

    Everything is written into a fresh sibling folder first, which then takes ``path``'s place: a
    reader sees the old model or the new one, and nothing of the old one (a sub-model's folder, say)
    is left over. A folder that holds files but no ``model.json`` is not a saved model and is never
    replaced.
    """
    folder = Path(path)
    if folder.exists():
        if not folder.is_dir():
            raise FileExistsError(f"{folder} exists and is not a folder: a model is saved as a folder")
        if any(folder.iterdir()) and not (folder / META).is_file():
            raise FileExistsError(f"{folder} holds files but no {META}: not a saved model, so save() does not replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _write(model, staging)
        if folder.exists():
            old = staging.with_name(staging.name + ".old")
            folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old)
        else:
            staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _write(model: Any, folder: Path) -> None:
    """The files of :func:`save_model` in the (new, empty) ``folder``."""
    owner = type(model).__name__
    writer = _Writer(folder, owner)
    params = {name: writer.encode(value, f"params.{name}") for name, value in model.get_params(deep=False).items()}
    state = {name: writer.encode(value, f"state.{name}") for name, value in model.fitted_state().items()}
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            writer.array(f"module.{name}", tensor.detach().cpu().numpy())
    seen = getattr(model, "seen_", None)
    meta = {
        "format": FORMAT,
        "class": class_path(type(model)),
        "recnb_version": recnb.__version__,
        "sizes": None if seen is None else {"n_users": int(seen.shape[0]), "n_items": int(seen.shape[1])},
        "params": params,
        "state": state,
        "module": sorted(k for k in writer.arrays if k.startswith("module.")),
    }
    np.savez(folder / ARRAYS, **writer.arrays)
    (folder / META).write_text(json.dumps(meta, indent=1, allow_nan=True) + "\n")


def load_model(path: str | Path, base: type | None = None) -> Any:
    """Read a model written by :func:`save_model`; ``base``: the class it must be (a subclass of)."""
    folder = Path(path)
    if not (folder / META).is_file():
        raise FileNotFoundError(f"{folder} holds no {META}: not a model saved by recnb's save()")
    meta = json.loads((folder / META).read_text())
    where = str(folder / META)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{where} has format {meta.get('format')!r}; this recnb reads format {FORMAT}")
    cls = resolve_class(meta.get("class", ""), where)
    if not (hasattr(cls, "fitted_state") and hasattr(cls, "restore_state")):
        raise TypeError(f"{where} names {cls.__qualname__}, which is not a recnb recommender")
    if base is not None and not issubclass(cls, base):
        raise TypeError(f"{where} holds a {cls.__qualname__}, not a {base.__qualname__}: load it with "
                        f"{cls.__qualname__}.load or recnb.models.base.load")
    with np.load(folder / ARRAYS, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    reader = _Reader(arrays, folder, where)
    model = cls(**{name: reader.decode(value) for name, value in meta["params"].items()})
    if isinstance(model, torch.nn.Module) and meta.get("module"):
        model.load_state_dict({key.removeprefix("module."): torch.from_numpy(arrays[key]) for key in meta["module"]})
    model.restore_state({name: reader.decode(value) for name, value in meta["state"].items()})
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model


def checkpoint_state(state: dict[str, Any], owner: str) -> dict[str, Any]:
    """A fitted state as plain containers and tensors (what ``torch.load(weights_only=True)`` reads)."""
    writer = _Writer(None, owner, string_arrays_as_lists=True)
    encoded = {name: writer.encode(value, name) for name, value in state.items()}
    return {"json": json.dumps(encoded, allow_nan=True),
            "arrays": {key: torch.from_numpy(value) for key, value in writer.arrays.items()}}


def state_from_checkpoint(stored: dict[str, Any], where: str) -> dict[str, Any]:
    """The inverse of :func:`checkpoint_state`."""
    reader = _Reader(stored["arrays"], None, where)
    return {name: reader.decode(value) for name, value in json.loads(stored["json"]).items()}
