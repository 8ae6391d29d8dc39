"""MovieLens readers on small hand-written files in each format; locating, downloading, safe extraction.

No test touches the network: the downloader is replaced by one that fails unless a test says otherwise,
and the real downloader is only pointed at file:// URLs and a closed local port.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import socket
import stat
import zipfile

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DataParams
from pipeline.data import movielens
from pipeline.data.movielens import RELEASES, genres_from_flags, normalise_genres, year_from_title
from pipeline.data.schema import RatingScale
from pipeline.errors import DataError
from tests.factories import FORMAT, GOOD, flags, offline_download, release_encoding, write_release

REAL_DOWNLOAD = movielens.download


RATINGS_FILE = {"csv": "ratings.csv", "ml-100k": "u.data", "ml-1m": "ratings.dat"}
MOVIES_FILE = {"csv": "movies.csv", "ml-100k": "u.item", "ml-1m": "movies.dat"}


def zip_bytes(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def release_zip(name: str) -> bytes:
    files = GOOD[FORMAT[name]]
    return zip_bytes({f"{name}/{file}": text.encode(release_encoding(file)) for file, text in files.items()})


def ratings_frame(users, movies, stars, times):
    return pd.DataFrame(
        {
            "user_id": np.array(users, dtype=np.int64),
            "movie_id": np.array(movies, dtype=np.int64),
            "rating": np.array(stars, dtype=np.float64),
            "timestamp": np.array(times, dtype=np.int64),
        }
    )


def movies_frame(ids, titles, years, genres):
    return pd.DataFrame(
        {
            "movie_id": np.array(ids, dtype=np.int64),
            "title": pd.Series(titles, dtype=object),
            "year": pd.array(years, dtype="Int64"),
            "genres": pd.Series(genres, dtype=object),
        }
    )


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No mirror from the environment, a private cache, and a downloader that cannot reach anything."""
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(movielens, "download", offline_download)


def params(source, tmp_path, mirror=None):
    return DataParams(source=source, mirror=str(mirror) if mirror else None, cache_dir=str(tmp_path / "cache"))


# ---------------------------------------------------------------- readers: good files


@pytest.mark.parametrize("name", ["ml-latest-small", "ml-25m", "ml-32m"])
def test_csv_release(tmp_path, name):
    ratings, movies = RELEASES[name].reader(write_release(tmp_path, name))
    pd.testing.assert_frame_equal(ratings, ratings_frame([1, 1, 2], [1, 3, 1], [4.0, 4.5, 0.5], [964982703, 964981247, 1445714835]))
    expected = movies_frame(
        [1, 3, 5, 7],
        ["Toy Story (1995)", "Misérables, Les (1995)", "Babylon 5", "Fawlty Towers (1975-1979)"],
        [1995, 1995, None, 1975],
        ["Adventure|Animation|Children|Comedy|Fantasy", "Drama|War", "", "Comedy"],
    )
    pd.testing.assert_frame_equal(movies, expected)
    assert RELEASES[name].scale == RatingScale(0.5, 5.0, 0.5)


def test_ml_100k(tmp_path):
    ratings, movies = movielens.read_100k(write_release(tmp_path, "ml-100k"))
    pd.testing.assert_frame_equal(
        ratings, ratings_frame([196, 186, 22], [242, 302, 242], [3.0, 3.0, 1.0], [881250949, 891717742, 878887116])
    )
    expected = movies_frame(
        [242, 302, 267, 1, 9],
        ["Kolya (1996)", "L.A. Confidential (1997)", "unknown", "Toy Story (1995)", "Misérables, Les (1995)"],
        [1997, 1997, None, 1995, 1995],  # release date first (Kolya: 24-Jan-1997), else the title
        ["Comedy", "Crime|Film-Noir|Mystery|Thriller", "", "Animation|Children|Comedy", "Drama|Musical"],
    )
    pd.testing.assert_frame_equal(movies, expected)
    assert RELEASES["ml-100k"].scale == RatingScale(1.0, 5.0, 1.0)


def test_ml_1m(tmp_path):
    ratings, movies = movielens.read_1m(write_release(tmp_path, "ml-1m"))
    pd.testing.assert_frame_equal(ratings, ratings_frame([1, 1, 2], [1193, 661, 1193], [5.0, 3.0, 4.0], [978300760, 978302109, 978298413]))
    expected = movies_frame(
        [1193, 661, 260, 9],
        [
            "One Flew Over the Cuckoo's Nest (1975)",
            "James and the Giant Peach (1996)",
            "Star Wars: Episode IV - A New Hope (1977)",
            "Misérables, Les (1995)",
        ],
        [1975, 1996, 1977, 1995],
        ["Drama", "Animation|Children|Musical", "Action|Adventure|Fantasy|Sci-Fi", "Drama|Musical"],
    )
    pd.testing.assert_frame_equal(movies, expected)
    assert RELEASES["ml-1m"].scale == RatingScale(1.0, 5.0, 1.0)


def test_normalise_genres():
    raw = pd.Series(["Children's|Comedy", "(no genres listed)", "unknown", None, "Drama"])
    assert normalise_genres(raw).tolist() == ["Children|Comedy", "", "", "", "Drama"]


def test_genres_from_flags():
    flags = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]])
    names = ("unknown", "Action", "Children's", "Western")
    assert genres_from_flags(flags, names).tolist() == ["Children|Western", "", "Action"]


@pytest.mark.parametrize("block", [3, 4, 5, 1 << 22])
def test_first_bad_byte_is_found_across_block_boundaries(tmp_path, block):
    path = tmp_path / "x.csv"
    path.write_bytes("ab\nçé\n".encode() + b"\xff\n")  # 'ç' and 'é' are two bytes each: 0xff is at offset 8
    assert movielens._first_bad_byte(path, "utf-8", block) == (0xFF, 8, 3)


def test_year_from_title():
    titles = pd.Series(["Heat (1995)", "Babylon 5", "Fawlty Towers (1975-1979)", "Ready Player One", " Blade (1998) "])
    assert year_from_title(titles).tolist() == [1995, pd.NA, 1975, pd.NA, 1998]


def test_ml_latest_small_from_the_shared_mirror(shared_datasets, tmp_path):
    ratings, movies = movielens.load("ml-latest-small", params("ml-latest-small", tmp_path, shared_datasets))
    assert (len(ratings), ratings["user_id"].nunique(), len(movies)) == (100_836, 610, 9_742)
    assert movies.loc[movies["movie_id"] == 1, "genres"].item() == "Adventure|Animation|Children|Comedy|Fantasy"
    assert set(ratings["rating"].unique()) <= set(np.arange(1, 11) / 2)
    assert not (tmp_path / "cache").exists()  # an extracted mirror folder is read in place


# ---------------------------------------------------------------- readers: bad files

BAD_FILES = [
    # (release, file, content, expected message)
    ("ml-latest-small", "ratings.csv", None, r"ratings\.csv: file not found"),
    ("ml-latest-small", "movies.csv", None, r"movies\.csv: file not found"),
    ("ml-100k", "u.data", None, r"u\.data: file not found"),
    ("ml-100k", "u.item", None, r"u\.item: file not found"),
    ("ml-1m", "ratings.dat", None, r"ratings\.dat: file not found"),
    ("ml-1m", "movies.dat", None, r"movies\.dat: file not found"),
    ("ml-latest-small", "ratings.csv", "", r"ratings\.csv: is empty"),
    ("ml-latest-small", "ratings.csv", "userId,movieId,rating,timestamp\n", r"ratings\.csv: has no rows"),
    ("ml-latest-small", "movies.csv", "", r"movies\.csv: is empty"),
    ("ml-100k", "u.data", "", r"u\.data: is empty"),
    ("ml-1m", "ratings.dat", "", r"ratings\.dat: is empty"),
    ("ml-1m", "movies.dat", "", r"movies\.dat: is empty"),
    (
        "ml-latest-small",
        "ratings.csv",
        "userId,movieId,timestamp\n1,1,964982703\n",
        r"ratings\.csv: missing column\(s\) rating; expected userId, movieId, rating, timestamp",
    ),
    (
        "ml-latest-small",
        "movies.csv",
        "movieId,title,genres,imdbId\n1,Heat (1995),Action,113277\n",
        r"movies\.csv: unexpected column\(s\) imdbId",
    ),
    ("ml-100k", "u.data", "1\t2\t3\t4\t5\n6\t7\t8\t9\t10\n", r"u\.data: has 5 fields per line, expected 4"),
    ("ml-100k", "u.data", "1\t2\t3\t4\n6\t7\t8\t9\t10\n", r"u\.data: cannot be parsed: .*line 2"),
    ("ml-100k", "u.item", "1|Heat (1995)|01-Jan-1995|\n", r"u\.item: has 4 fields per line, expected 24"),
    ("ml-1m", "ratings.dat", "1::1193::5\n", r"ratings\.dat: has 3 fields per line, expected 4"),
    ("ml-1m", "movies.dat", "1::Heat (1995)::Action::x\n", r"movies\.dat: has 4 fields per line, expected 3"),
    (
        "ml-latest-small",
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,abc,964982703\n",
        r"ratings\.csv: column 'rating': 1 row are not finite numbers \(e\.g\. 'abc'\)",
    ),
    (
        "ml-latest-small",
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2.5,4.0,964982703\n",
        r"ratings\.csv: column 'movie_id': 1 row are not whole numbers \(e\.g\. 2\.5\)",
    ),
    ("ml-100k", "u.data", "1\t2\tfive\t4\n", r"u\.data: column 'rating': 1 row are not finite numbers"),
    ("ml-1m", "ratings.dat", "1::x::5::978300760\n", r"ratings\.dat: column 'movie_id': 1 row are not whole numbers"),
    (
        "ml-latest-small",
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n,2,4.0,964982703\n,3,4.0,964982703\n",
        r"ratings\.csv: column 'user_id': 2 rows are missing \(NaN\)",
    ),
    (
        "ml-latest-small",
        "movies.csv",
        "movieId,title,genres\n1,Heat (1995),Action\n,Blade (1998),Action\n",
        r"movies\.csv: column 'movie_id': 1 row are missing \(NaN\)",
    ),
    ("ml-100k", "u.data", "1\t2\t3\t4\n\t2\t3\t4\n", r"u\.data: column 'user_id': 1 row are missing \(NaN\)"),
    ("ml-1m", "ratings.dat", "1::2::3::4\n1::::3::4\n", r"ratings\.dat: column 'movie_id': 1 row are missing \(NaN\)"),
    (
        "ml-latest-small",
        "movies.csv",
        "movieId,title,genres\n1,Heat (1995),Action\n2,Mis\xe9rables (1995),Drama\n".encode("latin-1"),
        r"movies\.csv: is not valid UTF-8 text \(byte 0xe9 at offset 47, line 3\)",  # 21 + 21 + len("2,Mis")
    ),
    (
        "ml-100k",
        "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||x|{flags('Comedy').replace('1', '2')}\n",
        r"u\.item: 1 row have genre flags other than 0 or 1 \(e\.g\. 'movie 1'\)",
    ),
]


@pytest.mark.parametrize(("name", "file", "content", "message"), BAD_FILES)
def test_bad_file_gives_one_clear_error(tmp_path, name, file, content, message):
    folder = write_release(tmp_path, name, {file: content})
    with pytest.raises(DataError, match=message) as caught:
        RELEASES[name].reader(folder)
    assert "\n" not in str(caught.value)
    assert str(folder / file) in str(caught.value)


# ---------------------------------------------------------------- locating: mirror, cache, download


def test_mirror_zip_is_extracted_into_the_cache_then_reused(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ml-1m.zip").write_bytes(release_zip("ml-1m"))
    ratings, _ = movielens.load("ml-1m", params("ml-1m", tmp_path, mirror))
    assert len(ratings) == 3
    assert sorted(p.name for p in (tmp_path / "cache" / "ml-1m").iterdir()) == ["movies.dat", "ratings.dat"]
    (mirror / "ml-1m.zip").write_bytes(b"changed, but the cache already holds the files")
    assert movielens.locate(RELEASES["ml-1m"], params("ml-1m", tmp_path, mirror)) == tmp_path / "cache" / "ml-1m"


def test_mirror_from_the_environment(tmp_path, monkeypatch):
    write_release(tmp_path / "mirror", "ml-100k")
    monkeypatch.setenv("RECSYS_DATA_MIRROR", str(tmp_path / "mirror"))
    assert movielens.locate(RELEASES["ml-100k"], params("ml-100k", tmp_path)) == tmp_path / "mirror" / "ml-100k"


def test_download_goes_to_the_cache_once(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, target, md5=None):
        calls.append((url, md5))
        target.write_bytes(release_zip("ml-100k"))

    monkeypatch.setattr(movielens, "download", fake_download)
    ratings, movies = movielens.load("ml-100k", params("ml-100k", tmp_path))
    assert (len(ratings), len(movies)) == (3, 5)
    movielens.load("ml-100k", params("ml-100k", tmp_path))
    assert calls == [("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723")]


def test_offline_without_mirror_is_one_line_with_url_and_hint(tmp_path):
    with pytest.raises(DataError) as caught:
        movielens.load("ml-25m", params("ml-25m", tmp_path))
    message = str(caught.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-25m.zip" in message
    assert "data.mirror" in message and "RECSYS_DATA_MIRROR" in message
    assert "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_mirror_lacking_the_dataset_says_so(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    write_release(mirror, "ml-latest-small")
    with pytest.raises(DataError, match=r"mirror .*mirror holds neither ml-1m/ nor ml-1m\.zip; cannot download"):
        movielens.load("ml-1m", params("ml-1m", tmp_path, mirror))
    assert "holds neither ml-1m/" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- zips: corrupt, truncated, unsafe


def _cached_files(tmp_path):
    return sorted((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []


def _mirror_with_zip(tmp_path, data: bytes):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ml-100k.zip").write_bytes(data)
    return params("ml-100k", tmp_path, mirror)


def _corrupt_member(data: bytes) -> bytes:
    """Flip a byte inside the first stored member's data (the local header is 30 + name bytes)."""
    start = 30 + len("ml-100k/u.data") + 5
    return data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1 :]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a zip", r"ml-100k\.zip: is not a valid zip archive"),
        (release_zip("ml-100k")[:-40], r"ml-100k\.zip: is not a valid zip archive"),  # truncated
        (_corrupt_member(release_zip("ml-100k")), r"ml-100k\.zip: is not a valid zip archive \(Bad CRC-32"),
        (zip_bytes({"ml-100k/u.data": b"1\t2\t3\t4\n"}), r"ml-100k\.zip: does not contain ml-100k/u\.item"),
    ],
    ids=["garbage", "truncated", "corrupt", "incomplete"],
)
def test_bad_zip_is_rejected_and_nothing_is_cached(tmp_path, data, message):
    with pytest.raises(DataError, match=message):
        movielens.load("ml-100k", _mirror_with_zip(tmp_path, data))
    assert _cached_files(tmp_path) == []


@pytest.mark.parametrize(
    ("entries", "symlinks", "bad"),
    [
        ({"ml-100k/../../evil.txt": b"x"}, (), "ml-100k/../../evil.txt"),
        ({"/tmp/evil.txt": b"x"}, (), "/tmp/evil.txt"),
        ({"C:/evil.txt": b"x"}, (), "C:/evil.txt"),
        ({}, ("ml-100k/link",), "ml-100k/link"),
    ],
    ids=["dotdot", "absolute", "drive", "symlink"],
)
def test_zip_entry_escaping_its_folder_is_refused(tmp_path, entries, symlinks, bad):
    good = {f"ml-100k/{f}": t.encode("latin-1") for f, t in GOOD["ml-100k"].items()}
    data = zip_bytes({**good, **entries}, symlinks)
    with pytest.raises(DataError, match="refusing to extract") as caught:
        movielens.load("ml-100k", _mirror_with_zip(tmp_path, data))
    assert repr(bad) in str(caught.value)
    assert _cached_files(tmp_path) == []
    assert not (tmp_path.parent / "evil.txt").exists()


# ---------------------------------------------------------------- the real downloader, without network


def test_download_streams_a_file_url_and_checks_md5(tmp_path):
    source = tmp_path / "ml-100k.zip"
    source.write_bytes(release_zip("ml-100k"))
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    REAL_DOWNLOAD(source.as_uri(), tmp_path / "copy.zip", md5=md5)
    assert (tmp_path / "copy.zip").read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match=r"download of file:.*ml-100k\.zip is corrupt \(md5 [0-9a-f]{32}, published 0+\)"):
        REAL_DOWNLOAD(source.as_uri(), tmp_path / "copy.zip", md5="0" * 32)


def test_download_cut_short_is_detected(tmp_path, monkeypatch):
    class ShortResponse(io.BytesIO):
        headers = http.client.HTTPMessage()

    response = ShortResponse(b"only part")
    response.headers["Content-Length"] = "1000"
    monkeypatch.setattr(movielens.urllib.request, "urlopen", lambda url, timeout: response)
    with pytest.raises(DataError, match=r"download of https://x/ml-1m\.zip was cut short \(9 of 1,000 bytes\)"):
        REAL_DOWNLOAD("https://x/ml-1m.zip", tmp_path / "out.zip")


def test_download_from_an_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-1m.zip"
    with pytest.raises(DataError, match=rf"cannot download {url} \(.*\)") as caught:
        REAL_DOWNLOAD(url, tmp_path / "out.zip", timeout=5)
    assert "\n" not in str(caught.value)


def test_locate_downloads_through_the_real_downloader(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ml-1m.zip").write_bytes(release_zip("ml-1m"))
    monkeypatch.setattr(movielens, "BASE_URL", site.as_uri())
    monkeypatch.setattr(movielens, "download", REAL_DOWNLOAD)
    monkeypatch.setitem(RELEASES, "ml-1m", dataclasses.replace(RELEASES["ml-1m"], md5=None))
    ratings, movies = movielens.load("ml-1m", params("ml-1m", tmp_path))
    assert (len(ratings), len(movies)) == (3, 4)
    assert (tmp_path / "cache" / "ml-1m" / "ratings.dat").is_file()
