"""The real MovieLens releases: find them (mirror, cache, download), extract safely, read, normalise.

Locating a release `<name>`: a mirror folder (param `data.mirror` or env RECSYS_DATA_MIRROR) holding
an extracted `<name>/` (read in place) or `<name>.zip` is tried first; then the cache
(`data.cache_path()/<name>/`); then GroupLens is downloaded into a temporary file, checked, and
extracted into the cache. Only the files the reader needs are extracted, after every zip entry
has been checked (no absolute paths, no '..', no symbolic links).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import http.client
import io
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.choices import Source
from pipeline.config import DataParams
from pipeline.data.schema import (
    GENRE_SEPARATOR,
    GENRES,
    MOVIE,
    RATING,
    TIMESTAMP,
    TITLE,
    USER,
    YEAR,
    RatingScale,
    conform_movies,
    conform_ratings,
)
from pipeline.errors import DataError, data_error
from pipeline.io import atomic_outputs

BASE_URL = "https://files.grouplens.org/datasets/movielens"
DOWNLOAD_TIMEOUT = 30  # seconds without an answer before a download gives up
MIRROR_HINT = "set `data.mirror` in params.yaml or RECSYS_DATA_MIRROR to a folder holding {name}.zip or {name}/"

CSV_RATINGS = ("userId", "movieId", "rating", "timestamp")
CSV_MOVIES = ("movieId", "title", "genres")
# ml-100k's u.item: id, title, dates, URL, then one 0/1 flag per genre in this order.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
ML100K_ITEM = ("movie_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES)
# Older spellings onto GENRE_VOCABULARY; these labels mean "no genre".
GENRE_SPELLING = {"Children's": "Children"}
NO_GENRE = ("(no genres listed)", "unknown")
YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$")


@dataclass(frozen=True)
class Release:
    """One MovieLens release: the files its reader needs, the reader, its rating scale, its size
    (ratings, from the release's README: the memory guard sizes ingest by it), its checksum."""

    name: Source
    files: tuple[str, ...]
    reader: Callable[[Path], tuple[pd.DataFrame, pd.DataFrame]]
    scale: RatingScale
    n_ratings: int
    md5: str | None = None  # of <name>.zip as published by GroupLens; None where it changes or is unknown

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.zip"


# ---------------------------------------------------------------- reading files


def _first_bad_byte(path: Path, encoding: str, block_size: int = 1 << 22) -> tuple[int, int, int]:
    """(value, offset, line number) of the first byte that does not decode; read block by block."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    with path.open("rb") as handle:
        while block := handle.read(block_size):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                pending = len(exc.object) - len(block)  # bytes held over from the previous block
                bad = offset + exc.start - pending
                return exc.object[exc.start], bad, lines + exc.object[: exc.start].count(b"\n")
            offset += len(block)
            lines += block.count(b"\n")
    return -1, offset, lines


def _read_table(
    path: Path, columns: tuple[str, ...], *, header: bool, encoding: str, source: io.BytesIO | None = None, **options
) -> pd.DataFrame:
    """Read a delimited file (or `source`, its already-loaded bytes) into `columns`.

    Every way the file can be unreadable becomes one DataError naming it.
    """
    if source is None and not path.is_file():
        raise data_error(str(path), "file not found")
    try:
        frame = pd.read_csv(source or path, header=0 if header else None, encoding=encoding, **options)
    except UnicodeDecodeError:
        value, offset, line = _first_bad_byte(path, encoding)
        where = f"byte {value:#04x} at offset {offset}, line {line}"
        raise data_error(str(path), f"is not valid {encoding.upper()} text ({where})") from None
    except pd.errors.EmptyDataError:
        raise data_error(str(path), "is empty") from None
    except pd.errors.ParserError as exc:
        raise data_error(str(path), f"cannot be parsed: {str(exc).strip().splitlines()[-1]}") from None
    expected = ", ".join(columns)
    if header:
        found = [str(c) for c in frame.columns]
        missing, extra = [c for c in columns if c not in found], [c for c in found if c not in columns]
        if missing:
            raise data_error(str(path), f"missing column(s) {', '.join(missing)}; expected {expected}")
        if extra:
            raise data_error(str(path), f"unexpected column(s) {', '.join(extra)}; expected {expected}")
        frame = frame[list(columns)]
    elif frame.shape[1] != len(columns):
        raise data_error(str(path), f"has {frame.shape[1]} fields per line, expected {len(columns)} ({expected})")
    else:
        frame.columns = list(columns)
    if frame.empty:
        raise data_error(str(path), "has no rows")
    return frame


def _read_dat(path: Path, columns: tuple[str, ...], *, numeric: bool) -> pd.DataFrame:
    """ml-1m's '::'-separated latin-1 .dat files.

    Numeric files have '::' swapped for tabs and go through the fast C parser; text files (where a
    title could end in ':') use the slow exact separator.
    """
    if not numeric or not path.is_file():
        return _read_table(path, columns, header=False, encoding="latin-1", quoting=csv.QUOTE_NONE, sep="::", engine="python")
    source = io.BytesIO(path.read_bytes().replace(b"::", b"\t"))
    return _read_table(path, columns, header=False, encoding="latin-1", source=source, quoting=csv.QUOTE_NONE, sep="\t")


# ---------------------------------------------------------------- normalising


def normalise_genres(genres: pd.Series) -> pd.Series:
    """'|'-separated genres onto GENRE_VOCABULARY spellings; '(no genres listed)' / 'unknown' -> ''."""
    genres = genres.fillna("").astype(str).str.strip()
    genres = genres.mask(genres.isin(NO_GENRE), "")
    for old, new in GENRE_SPELLING.items():
        genres = genres.str.replace(old, new, regex=False)
    return genres.astype(object)


def genres_from_flags(flags: np.ndarray, names: tuple[str, ...]) -> pd.Series:
    """0/1 flag columns -> '|'-joined genre names (normalised; 'unknown' dropped)."""
    labels = normalise_genres(pd.Series(names)).to_numpy()
    joined = pd.Series("", index=range(len(flags)), dtype=object)
    for column, label in enumerate(labels):  # one pass per genre, vectorized over movies
        if label:
            joined = joined + np.where(flags[:, column] == 1, label + GENRE_SEPARATOR, "")
    return joined.str.rstrip(GENRE_SEPARATOR).astype(object)


def year_from_title(titles: pd.Series) -> pd.Series:
    """The release year at the end of a MovieLens title, "Heat (1995)" -> 1995; <NA> when absent."""
    return pd.to_numeric(titles.astype(str).str.extract(YEAR_IN_TITLE, expand=False), errors="coerce").astype("Int64")


def _movies(frame: pd.DataFrame, path: Path, year: pd.Series | None = None) -> pd.DataFrame:
    titles = frame[TITLE].fillna("").astype(str).str.strip()
    found = year_from_title(titles)
    out = pd.DataFrame(
        {
            MOVIE: frame[MOVIE],
            TITLE: titles.astype(object),
            YEAR: found if year is None else year.fillna(found),
            GENRES: frame[GENRES],
        }
    )
    return conform_movies(out, str(path))


# ---------------------------------------------------------------- readers, one per format


def read_csv_release(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ml-latest-small, ml-25m, ml-32m: UTF-8 ratings.csv and movies.csv with headers."""
    ratings_path, movies_path = folder / "ratings.csv", folder / "movies.csv"
    ratings = _read_table(ratings_path, CSV_RATINGS, header=True, encoding="utf-8")
    ratings.columns = [USER, MOVIE, RATING, TIMESTAMP]
    movies = _read_table(movies_path, CSV_MOVIES, header=True, encoding="utf-8", keep_default_na=False)
    movies.columns = [MOVIE, TITLE, GENRES]
    movies[GENRES] = normalise_genres(movies[GENRES])
    movies[MOVIE] = movies[MOVIE].replace("", np.nan)
    return conform_ratings(ratings, str(ratings_path)), _movies(movies, movies_path)


def read_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ml-100k: tab-separated u.data; '|'-separated latin-1 u.item with 19 genre flags."""
    ratings_path, movies_path = folder / "u.data", folder / "u.item"
    ratings = _read_table(ratings_path, (USER, MOVIE, RATING, TIMESTAMP), header=False, encoding="latin-1", sep="\t")
    items = _read_table(movies_path, ML100K_ITEM, header=False, encoding="latin-1", sep="|", quoting=csv.QUOTE_NONE)
    flags = items[list(ML100K_GENRES)]
    bad = ~flags.isin([0, 1]).all(axis=1)
    if bad.any():
        examples = items.loc[bad, "movie_id"].map(lambda m: f"movie {m}")
        raise data_error(str(movies_path), "have genre flags other than 0 or 1", count=int(bad.sum()), examples=examples)
    released = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    movies = pd.DataFrame({MOVIE: items["movie_id"], TITLE: items["title"], GENRES: genres_from_flags(flags.to_numpy(), ML100K_GENRES)})
    return conform_ratings(ratings, str(ratings_path)), _movies(movies, movies_path, released.dt.year.astype("Int64"))


def read_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ml-1m: '::'-separated latin-1 ratings.dat and movies.dat."""
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    ratings = _read_dat(ratings_path, (USER, MOVIE, RATING, TIMESTAMP), numeric=True)
    movies = _read_dat(movies_path, (MOVIE, TITLE, GENRES), numeric=False)
    movies[GENRES] = normalise_genres(movies[GENRES])
    return conform_ratings(ratings, str(ratings_path)), _movies(movies, movies_path)


CSV_FILES = ("ratings.csv", "movies.csv")
RELEASES = {
    release.name: release
    for release in (
        Release("ml-latest-small", CSV_FILES, read_csv_release, RatingScale(0.5, 5.0, 0.5), 100_836),
        Release("ml-25m", CSV_FILES, read_csv_release, RatingScale(0.5, 5.0, 0.5), 25_000_095, "6b51fb2759a8657d3bfcbfc42b592ada"),
        Release("ml-32m", CSV_FILES, read_csv_release, RatingScale(0.5, 5.0, 0.5), 32_000_204),
        Release("ml-100k", ("u.data", "u.item"), read_100k, RatingScale(1.0, 5.0, 1.0), 100_000, "0e33842e24a9c977be4e0107933c0723"),
        Release("ml-1m", ("ratings.dat", "movies.dat"), read_1m, RatingScale(1.0, 5.0, 1.0), 1_000_209, "c4d9eecfca2ab87c1945afe126590906"),
    )
}


# ---------------------------------------------------------------- download and safe extraction


def download(url: str, target: Path, md5: str | None = None, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Stream `url` into `target` with a progress bar (hidden without a TTY); check size and md5.

    Raises DataError (one line naming the URL) on any network failure or mismatch.
    """
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            bar = tqdm(total=expected, unit="B", unit_scale=True, desc=Path(url).name, disable=not sys.stderr.isatty())
            with bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {url} ({reason})") from None
    if expected is not None and received != expected:
        raise DataError(f"download of {url} was cut short ({received:,} of {expected:,} bytes)")
    if md5 is not None and digest.hexdigest() != md5:
        raise DataError(f"download of {url} is corrupt (md5 {digest.hexdigest()}, published {md5})")


def _check_entries(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse the whole archive if any entry is absolute, climbs out with '..', or is a symlink."""
    for entry in archive.infolist():
        name = entry.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise data_error(str(path), f"entry {entry.filename!r} escapes its folder; refusing to extract")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise data_error(str(path), f"entry {entry.filename!r} is a symbolic link; refusing to extract")


def extract(path: Path, release: Release, cache: Path) -> Path:
    """Extract the release's files from a zip into `cache/<name>/` (atomically); return that folder."""
    target = cache / release.name
    try:
        with zipfile.ZipFile(path) as archive:
            _check_entries(archive, path)
            names = set(archive.namelist())
            members = {}
            for file in release.files:  # "<name>/<file>" as GroupLens ships it, or the bare file
                found = [m for m in (f"{release.name}/{file}", file) if m in names]
                if not found:
                    raise data_error(str(path), f"does not contain {release.name}/{file}")
                members[file] = found[0]
            with atomic_outputs(target) as (tmp,):
                tmp.mkdir()
                for file, member in members.items():
                    with archive.open(member) as src, (tmp / file).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise data_error(str(path), f"is not a valid zip archive ({exc}); delete it and fetch it again") from None
    return target


def _complete(folder: Path, release: Release) -> bool:
    return all((folder / file).is_file() for file in release.files)


def locate(release: Release, data: DataParams, fetch: Callable[..., None] | None = None) -> Path:
    """The folder holding `release`'s files: mirror, else cache, else a fresh download via `fetch`
    (default: `download`, looked up at call time so tests can replace it)."""
    mirror = data.mirror_dir()
    missing_from_mirror = ""
    if mirror is not None:
        if (mirror / release.name).is_dir():
            return mirror / release.name
        if (mirror / f"{release.name}.zip").is_file():
            if _complete(data.cache_path() / release.name, release):
                return data.cache_path() / release.name
            return extract(mirror / f"{release.name}.zip", release, data.cache_path())
        missing_from_mirror = f"mirror {mirror} holds neither {release.name}/ nor {release.name}.zip; "
        print(f"note: {missing_from_mirror}trying the cache, then {release.url}", file=sys.stderr)
    cached = data.cache_path() / release.name
    if _complete(cached, release):
        return cached
    with tempfile.TemporaryDirectory(prefix="recsys-download-") as tmp:
        archive = Path(tmp) / f"{release.name}.zip"
        try:
            (fetch or download)(release.url, archive, md5=release.md5)
        except DataError as exc:
            hint = MIRROR_HINT.format(name=release.name)
            raise DataError(f"{missing_from_mirror}{exc}; offline? {hint}") from None
        return extract(archive, release, data.cache_path())


def load(name: Source, data: DataParams, fetch: Callable[..., None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, movies) of a MovieLens release, in the data contract."""
    release = RELEASES[name]
    return release.reader(locate(release, data, fetch))
