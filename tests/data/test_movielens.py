"""MovieLens loader tests on tiny fixture files written here (the real data may not be redistributed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recnb.data import load
from recnb.data.movielens import ENV, GENRES, load_movielens, recbole_copy
from recnb.data.validation import DataValidationError

U_DATA = "1\t10\t4\t881250949\n2\t10\t5\t881250950\n1\t20\t3\t881250951\n"
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n"


def genre_flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


U_ITEM = (
    f"10|Toy Story (1995)|01-Jan-1995||http://x|{genre_flags('Animation', 'Comedy')}\n"
    f"20|Heat (1995)|01-Jan-1995||http://y|{genre_flags('Action', 'Crime')}\n"
    f"30|Caf\xe9 au lait (1994)|01-Jan-1994||http://z|{genre_flags('Comedy')}\n"
)


def write_grouplens(folder: Path, data: str = U_DATA, item: str = U_ITEM, user: str = U_USER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(data, encoding="latin-1")
    (folder / "u.item").write_text(item, encoding="latin-1")
    (folder / "u.user").write_text(user, encoding="latin-1")
    return folder


def check_tiny(data) -> None:
    assert data.name == "movielens-100k"
    i = data.interactions
    assert list(i.columns) == ["user_id", "item_id", "timestamp", "event", "rating"]
    assert i["user_id"].tolist() == [1, 2, 1] and i["item_id"].tolist() == [10, 10, 20]
    assert i["rating"].tolist() == [4.0, 5.0, 3.0] and set(i["event"]) == {"rating"}
    assert i["timestamp"].iloc[0] == pd.Timestamp("1997-12-04 15:55:49")
    assert i.dtypes["timestamp"] == "datetime64[ns]" and i.dtypes["user_id"] == "int64"
    items = data.items.set_index("item_id")
    assert items.loc[10, "title"] == "Toy Story" and items.loc[10, "year"] == 1995
    assert items.loc[10, "category"] == "Animation" and items.loc[10, "genres"] == "Animation|Comedy"
    assert items.loc[10, "text"] == "Toy Story (1995). Genres: Animation, Comedy."
    assert items.loc[30, "title"] == "Café au lait"  # latin-1
    assert data.users["user_id"].tolist() == [1, 2]


def test_grouplens_folder_and_parent_folder(tmp_path):
    folder = write_grouplens(tmp_path / "ml-100k")
    check_tiny(load_movielens(folder))
    check_tiny(load_movielens(tmp_path))  # the folder that contains ml-100k/
    check_tiny(load("movielens", path=folder))


def test_grouplens_zip(tmp_path):
    folder = write_grouplens(tmp_path / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("u.data", "u.item", "u.user"):
            z.write(folder / name, f"ml-100k/{name}")
    check_tiny(load_movielens(archive))


def test_recbole_atomic_files(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA, encoding="utf-8")
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Comedy\n20\tHeat\t1995\tAction Crime\n30\tCafé au lait\t1994\tComedy\n",
        encoding="latin-1")
    (tmp_path / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        + U_USER.replace("|", "\t"), encoding="utf-8")
    check_tiny(load_movielens(tmp_path))


def test_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(write_grouplens(tmp_path / "ml-100k")))
    check_tiny(load_movielens())


def test_absent_data_names_both_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr("recnb.data.movielens.recbole_copy", lambda: None)
    with pytest.raises(FileNotFoundError) as caught:
        load_movielens()
    message = str(caught.value)
    assert "pip install --no-deps recbole==1.2.1" in message and ENV in message and "path=" in message
    with pytest.raises(FileNotFoundError, match="holds no MovieLens-100k"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found at"):
        load_movielens(tmp_path / "nowhere")


def test_damaged_files_report_every_problem_with_file_and_line(tmp_path):
    data = "1\t10\t4\t881250949\n2\t10\tfive\t881250950\n1\t99\t7\t881250951\n\t20\t3\t881250952\n"
    item = U_ITEM + f"20|Heat again (1995)|01-Jan-1995||http://y|{genre_flags('Action')}\n"
    folder = write_grouplens(tmp_path / "ml-100k", data=data, item=item)
    with pytest.raises(DataValidationError) as caught:
        load_movielens(folder)
    got = {(Path(p.source).name, p.column, p.rows, p.expected.split(" (")[0]) for p in caught.value.problems}
    assert got == {
        ("u.item", "item_id", (4,), "unique ids"),
        ("u.data", "user_id", (4,), "an id"),
        ("u.data", "rating", (2,), "a number"),
        ("u.data", "rating", (3,), "a rating in 1..5"),
        ("u.data", "item_id", (3,), f"an id listed in {folder}/u.item"),
    }
    assert f"{folder}/u.data, column 'rating', line 2: expected a number; found 'five'" in str(caught.value)


def test_missing_and_empty_files_are_reported_together(tmp_path):
    folder = write_grouplens(tmp_path / "ml-100k", item="")
    (folder / "u.user").unlink()
    with pytest.raises(DataValidationError) as caught:
        load_movielens(folder)
    got = {(Path(p.source).name, p.expected) for p in caught.value.problems}
    assert got == {("u.item", "a readable delimited text file"), ("u.user", "a readable pipe-separated file")}
    assert "No such file or directory" in str(caught.value)


def test_recbole_folder_with_a_file_missing(tmp_path):
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA)
    with pytest.raises(DataValidationError) as caught:
        load_movielens(tmp_path)
    assert {Path(p.source).name for p in caught.value.problems} == {"ml-100k.item", "ml-100k.user"}


def test_wrong_separator_is_explained(tmp_path):
    folder = write_grouplens(tmp_path / "ml-100k", data=U_DATA.replace("\t", ","))
    with pytest.raises(DataValidationError, match=r"u.data: expected tab-separated lines of 4 fields: user_id, "
                                                  r"item_id, rating, timestamp; found 1 column\(s\) per line: wrong separator\?"):
        load_movielens(folder)


def test_real_recbole_copy():
    if recbole_copy() is None:
        pytest.skip("recbole's ml-100k copy is absent: `pip install --no-deps recbole==1.2.1` to run this test")
    data = load_movielens(recbole_copy())
    assert (len(data.users), len(data.items), len(data.interactions)) == (943, 1682, 100_000)
    assert data.interactions["rating"].between(1, 5).all() and set(data.interactions["event"]) == {"rating"}
    assert data.items.set_index("item_id").loc[1, "text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert data.interactions["timestamp"].dt.year.between(1997, 1998).all()
