"""The id rule of own data: whole-number ids kept, any other id kind hashed stably; maps back to the source."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.data import ids
from pipeline.data.ids import HASH_MAX, HASHED, KEPT, SOURCE_ID, hash_id, map_ids, to_source_ids
from pipeline.errors import DataError


def one(values, dtype=None):
    return map_ids([pd.Series(values, dtype=dtype)], "user_id", ["ratings.csv"], ["uid"])


def test_hash_is_blake2b_reduced_to_53_bits_and_pinned():
    # Pinned values: a change of the function would renumber every user of every team's data.
    assert hash_id("alice") == 3074289512537337
    assert hash_id("bob") == 5395491351603258
    digest = int.from_bytes(hashlib.blake2b("ü".encode(), digest_size=8).digest(), "big")
    assert hash_id("ü") == digest % HASH_MAX + 1
    values = ids.hash_ids(np.array([f"user-{i}" for i in range(2000)], dtype=object))
    assert values.min() >= 1 and values.max() <= 2**53 - 1
    assert (values.astype(np.float64).astype(np.int64) == values).all()  # exact through float64


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([3, 1, 3], "int64"), ([3.0, 1.0, 3.0], "float64"), (["3", "1", "3"], object), (["3", "1", "3"], "str")],
)
def test_whole_number_ids_are_kept(values, dtype):
    mapped = one(values, dtype)
    assert mapped.rule == KEPT
    assert mapped.columns[0].tolist() == [3, 1, 3] and str(mapped.columns[0].dtype) == "int64"
    assert mapped.id_map.to_dict("list") == {"user_id": [1, 3], SOURCE_ID: ["1", "3"]}


@pytest.mark.parametrize("values", [["u1", "u2", "u1"], ["007", "7", "007"], ["1", "x", "1"], ["1.0", "2", "1.0"]])
def test_any_other_id_kind_is_hashed_as_text(values):
    mapped = one(values, object)
    assert mapped.rule == HASHED
    assert mapped.columns[0].tolist() == [hash_id(v) for v in values]
    assert len(set(mapped.columns[0])) == 2  # "007" and "7" stay two users
    assert set(mapped.id_map[SOURCE_ID]) == set(values)
    assert mapped.id_map["user_id"].is_monotonic_increasing


def test_appending_ratings_keeps_every_existing_hashed_id():
    before = one(["ann", "bob", "ann"], object)
    after = one(["ann", "bob", "ann", "zoe", "aaron", "bob"], object)  # new users, sorting before and after
    assert after.columns[0][:3].tolist() == before.columns[0].tolist()
    old = before.id_map.set_index(SOURCE_ID)["user_id"]
    assert after.id_map.set_index(SOURCE_ID)["user_id"].reindex(old.index).equals(old)


def test_movie_ids_are_decided_across_both_tables():
    ratings_ids, movies_ids = pd.Series([10, 20], dtype="int64"), pd.Series(["10", "20", "m30"], dtype=object)
    mapped = map_ids([ratings_ids, movies_ids], "movie_id", ["r.csv", "m.csv"], ["item", "item"])
    assert mapped.rule == HASHED  # one text id makes the whole kind text: 10 in ratings is "10" in movies
    assert mapped.columns[0].tolist() == mapped.columns[1][:2].tolist() == [hash_id("10"), hash_id("20")]
    assert len(mapped.id_map) == 3


def test_a_missing_id_is_an_error_naming_file_column_count_and_row():
    with pytest.raises(DataError, match=r"ratings\.csv: column 'uid': 1 row have no id \(missing value\) \(e\.g\. 'row 1'\)"):
        one(["a", None, "b"], object)


def test_fractional_ids_are_an_error():
    with pytest.raises(DataError, match=r"column 'uid': 1 row are not whole numbers \(e\.g\. 2\.5\)"):
        one([1.0, 2.5])


def test_a_hash_collision_stops_naming_both_source_ids(monkeypatch):
    monkeypatch.setattr(ids, "hash_id", lambda text: 42 if text in ("ann", "bob") else 7)
    with pytest.raises(DataError, match=r"user_id: source ids 'ann' and 'bob' hash to the same id 42"):
        one(["ann", "bob", "cy"], object)


def test_to_source_ids_reads_the_map_back():
    mapped = one(["u1", "u2", "u1"], object)
    back = to_source_ids(mapped.columns[0], mapped.id_map, "user_id")
    assert back.tolist() == ["u1", "u2", "u1"]
    assert to_source_ids(np.array([5]), mapped.id_map, "user_id").isna().all()
