"""Builders of the small, seeded data and models the tests share; test modules import from here only.

Frames follow the data contract (README, "Data contract"). Nothing here reads or writes outside
the folders it is given.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import records
from pipeline.config import CofiParams, CofiRankingParams, ColumnsParams, SyntheticParams
from pipeline.data import movielens
from pipeline.data.schema import GENRES, MOVIE, RATING, TIMESTAMP, TITLE, USER, YEAR, RatingScale
from pipeline.data.synthetic import generate
from pipeline.errors import DataError
from pipeline.features import Features, build_features, save_features
from pipeline.io import write_json
from pipeline.models.base import TrainingData
from pipeline.models.cofi import CofiModel
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.models.loading import model_class
from pipeline.paths import Layout
from tests.isolation import REPO

SCALE = RatingScale(0.5, 5.0, 0.5)  # MovieLens' half stars, as the synthetic source writes them
T = 1_000_000_000  # a plausible rating time (2001)
DATASET = {"source": "synthetic", **SCALE.to_meta(), "fingerprint": "f00d"}  # a dataset.json


# ---- ratings and movies ---------------------------------------------------------------------------


def tiny_movies(n_movies: int = 12) -> pd.DataFrame:
    """Movies 10, 20, ... with titles 'Movie 10', ... in the data contract."""
    ids = np.arange(1, n_movies + 1, dtype=np.int64) * 10
    return pd.DataFrame(
        {
            MOVIE: ids,
            TITLE: [f"Movie {i}" for i in ids],
            YEAR: pd.array([2000] * n_movies, dtype="Int64"),
            GENRES: ["Drama"] * n_movies,
        }
    )


def tiny_ratings(n_users: int = 8, n_movies: int = 12, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    """Each of users 1..n_users rates `per_user` distinct movies of tiny_movies(n_movies), half stars 0.5..5."""
    rng = np.random.default_rng(seed)
    movie_ids = tiny_movies(n_movies)[MOVIE].to_numpy()
    picks = np.argsort(rng.random((n_users, n_movies)), axis=1)[:, :per_user]
    return pd.DataFrame(
        {
            USER: np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user),
            MOVIE: movie_ids[picks.ravel()],
            RATING: rng.integers(1, 11, size=n_users * per_user) / 2.0,
            TIMESTAMP: np.arange(n_users * per_user, dtype=np.int64) + T,
        }
    )


def low_rank_ratings(n_users: int = 30, n_movies: int = 40, density: float = 0.5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, movies): ratings = 3.5 + user bias + movie bias + rank-2 interaction + noise, on half
    stars; ids start at 10, and the catalogue has two movies nobody rated."""
    rng = np.random.default_rng(seed)
    user_factors, movie_factors = rng.normal(0, 0.7, (n_users, 2)), rng.normal(0, 0.7, (n_movies, 2))
    full = 3.5 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.4, (1, n_movies)) + user_factors @ movie_factors.T
    full += rng.normal(0, 0.3, full.shape)
    users, movies = np.nonzero(rng.random(full.shape) < density)
    ratings = pd.DataFrame(
        {
            USER: (users + 10).astype(np.int64),
            MOVIE: (movies + 10).astype(np.int64),
            RATING: np.clip(np.round(full[users, movies] * 2) / 2, *SCALE.bounds),
            TIMESTAMP: np.arange(len(users), dtype=np.int64),
        }
    )
    ids = np.arange(10, 10 + n_movies + 2, dtype=np.int64)  # the last two: ids 10 + n_movies and the next
    movies_frame = pd.DataFrame(
        {MOVIE: ids, TITLE: [f"Movie {i} (2000)" for i in ids], YEAR: pd.array([2000] * len(ids), "Int64"), GENRES: "Drama"}
    )
    return ratings, movies_frame


def clean_ratings() -> pd.DataFrame:
    """Six ratings of three users over clean_movies() that pass every validation check."""
    return pd.DataFrame(
        {
            USER: np.array([1, 1, 2, 2, 3, 3], dtype="int64"),
            MOVIE: np.array([10, 20, 10, 30, 20, 30], dtype="int64"),
            RATING: [4.0, 3.5, 5.0, 0.5, 2.0, 1.5],
            TIMESTAMP: np.array([T, T + 1, T + 2, T + 3, T + 4, T + 5], dtype="int64"),
        }
    )


def clean_movies() -> pd.DataFrame:
    """As pandas 3 reads it back from parquet: str titles and genres, nullable Int64 year."""
    return pd.DataFrame(
        {
            MOVIE: np.array([10, 20, 30], dtype="int64"),
            TITLE: pd.array(["Toy Story (1995)", "Heat (1995)", "Untitled"], dtype="str"),
            YEAR: pd.array([1995, 1995, None], dtype="Int64"),
            GENRES: pd.array(["Adventure|Animation|Children|Comedy|Fantasy", "Action|Crime|Thriller", ""], dtype="str"),
        }
    )


def training_data(ratings: pd.DataFrame, movies: pd.DataFrame, **fields) -> TrainingData:
    """What a model is fitted on, on the half-star scale unless `scale=` says otherwise."""
    return TrainingData(ratings, movies, fields.pop("scale", SCALE), **fields)


def tiny_synthetic_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Features]:
    """(train, test, movies, features) of 1,600 synthetic ratings (40 users, 120 movies), a random
    20% as test and the features fitted on train: the content models' tiny data."""
    ratings, movies = generate(SyntheticParams(n_users=40, n_movies=120, n_ratings=1600, min_user_ratings=20, seed=3))
    train, test = split_rows(ratings, seed)
    return train, test, movies, build_features(train, movies, 0.0)


def split_rows(ratings: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): each rating in test with probability 0.2 (seeded)."""
    test = np.random.default_rng(seed).random(len(ratings)) < 0.2
    return ratings[~test].reset_index(drop=True), ratings[test].reset_index(drop=True)


# ---- trained models -----------------------------------------------------------------------------


def tiny_cofi(ratings: pd.DataFrame, movies: pd.DataFrame) -> CofiModel:
    """A collaborative filtering model trained in a fraction of a second (3 features, 5 iterations)."""
    return CofiModel.fit(training_data(ratings, movies), CofiParams(num_features=3, iterations=5))


def tiny_cofi_ranking(ratings: pd.DataFrame, movies: pd.DataFrame) -> CofiRankingModel:
    """A collaborative filtering model for top-N lists trained in milliseconds (3 features, 4 ALS iterations;
    every rating a positive, so that every user's scores differ; no movie biases)."""
    params = CofiRankingParams(num_features=3, iterations=4, lambda_=0.001, positive_threshold=None)
    return CofiRankingModel.fit(training_data(ratings, movies), params, progress=False)


# ---- a pipeline folder ------------------------------------------------------------------------------


def layout_with(
    root: Path,
    *,
    ratings: pd.DataFrame | None = None,
    train: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
    movies: pd.DataFrame | None = None,
    dataset: dict | None = None,
) -> Layout:
    """Layout(root) holding the given stage outputs at their paths (raw ratings, split, movies, dataset.json)."""
    layout = Layout(root)
    frames = {layout.raw_ratings: ratings, layout.train: train, layout.test: test, layout.raw_movies: movies}
    for path, frame in frames.items():
        if frame is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
    if dataset is not None:
        write_json(layout.raw_meta, dataset)
    return layout


def training_layout(root: Path, dataset: dict = DATASET) -> Layout:
    """What a training stage reads, in Layout(root): a train split of low_rank_ratings (12 users,
    15 movies), the movies and dataset.json."""
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    return layout_with(root, train=ratings, movies=movies, dataset=dataset)


def content_layout(root: Path, dataset: dict = DATASET) -> Layout:
    """What train_content reads, in Layout(root): a train split of a small synthetic dataset (30
    users, 80 movies, 720 ratings), its movies, dataset.json and the features stage's output."""
    ratings, movies = generate(SyntheticParams(n_users=30, n_movies=80, n_ratings=900, min_user_ratings=20, seed=5))
    train = ratings.sample(frac=0.8, random_state=0).reset_index(drop=True)
    layout = layout_with(root, train=train, movies=movies, dataset=dataset)
    save_features(build_features(train, movies, 0.0), layout.features)
    return layout


def training_outputs(layout: Layout, name: str) -> tuple[Path, Path, Path, Path]:
    """What the training stage of model `name` writes: its folder, metrics file, record and learning curve."""
    return layout.model_dir(name), layout.training_metrics(name), layout.training_record(name), layout.learning_curve(name)


def training_result(layout: Layout, name: str) -> dict:
    """What the training stage of model `name` wrote to its metrics file and record, joined."""
    return records.read(layout.training_metrics(name), layout.training_record(name))


# ---- MovieLens release files -------------------------------------------------------------------


def flags(*genres: str) -> str:
    """ml-100k's 0/1 genre columns with the given genres set."""
    return "|".join("1" if g in genres else "0" for g in movielens.ML100K_GENRES)


CHILDRENS = "Children's"
# One small, valid set of files per format (text; encoded as each format is: UTF-8 csv, latin-1 otherwise).
GOOD = {
    "csv": {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,1445714835\n",
        "movies.csv": (
            "movieId,title,genres\n"
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
            '3,"Misérables, Les (1995)",Drama|War\n'
            "5,Babylon 5,(no genres listed)\n"
            "7,Fawlty Towers (1975-1979),Comedy\n"
        ),
    },
    "ml-100k": {
        "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n",
        "u.item": (
            f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{flags('Comedy')}\n"
            f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}\n"
            f"267|unknown||||{flags('unknown')}\n"
            f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags('Animation', CHILDRENS, 'Comedy')}\n"
            f"9|Misérables, Les (1995)|||http://x|{flags('Drama', 'Musical')}\n"
        ),
    },
    "ml-1m": {
        "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
        "movies.dat": (
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
            "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
            "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
            "9::Misérables, Les (1995)::Drama|Musical\n"
        ),
    },
}
FORMAT = {"ml-latest-small": "csv", "ml-25m": "csv", "ml-32m": "csv", "ml-100k": "ml-100k", "ml-1m": "ml-1m"}


def release_encoding(file: str) -> str:
    return "utf-8" if file.endswith(".csv") else "latin-1"


def write_release(root: Path, name: str, changes: dict[str, str | bytes | None] | None = None) -> Path:
    """root/<name>/ holding the good files of its format; `changes` overrides (text, bytes, or None to omit)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    contents = {**GOOD[FORMAT[name]], **(changes or {})}
    for file, text in contents.items():
        if text is not None:
            (folder / file).write_bytes(text if isinstance(text, bytes) else text.encode(release_encoding(file)))
    return folder


def offline_download(url: str, target: Path, md5: str | None = None) -> None:
    """Stands in for movielens.download: tests never reach the network."""
    raise DataError(f"cannot download {url} (offline in tests)")


# ---- own data: tables with their own column names ------------------------------------------------

COLUMNS = ColumnsParams(user="who", movie="item", rating="stars", timestamp="rated_at", title="name", genres="tags", year="released")


def sample_tables(n_users: int = 12, n_movies: int = 8, n_ratings: int = 48, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small ratings table (text user ids, unix seconds spread over 2019-2021) and its movies."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, size=n_ratings, replace=False)
    ratings = pd.DataFrame(
        {
            "who": [f"user-{u:02d}" for u in pairs // n_movies],
            "item": (pairs % n_movies + 1).astype("int64"),
            "stars": rng.integers(1, 11, n_ratings) / 2.0,
            "rated_at": rng.integers(1_546_300_800, 1_640_995_200, n_ratings).astype("int64"),
        }
    )
    movies = pd.DataFrame(
        {
            "item": np.arange(1, n_movies + 1, dtype="int64"),
            "name": [f"Film {i} ({1990 + i})" for i in range(1, n_movies + 1)],
            "tags": ["Drama|Comedy", "", "Action", "Sci-Fi|Thriller", "Drama", "", "Comedy", "Horror"][:n_movies],
            "released": pd.array([None, 1992, None, 1994, 1995, None, 1997, 1998][:n_movies], dtype="Int64"),
        }
    )
    return ratings, movies


# ---- library chatter ------------------------------------------------------------------------------

# Lines the libraries print on their own (TensorFlow's native start-up, MLflow, PySpark, GX warnings;
# MLflow's registry chatter; DVC's warning for an empty dependency such as an empty __init__.py).
NOISE = re.compile(
    r"cuInit|absl|oneDNN|cudart|TF_ENABLE_ONEDNN_OPTS|tensorflow/core|FutureWarning|UserWarning|WARNING mlflow|Downloading artifacts"
    r"|WARNING: '[^']*' is empty|Successfully registered model|Created version '|INFO mlflow"
)


def noise_lines(text: str) -> list[str]:
    """The lines of `text` that are library noise (TensorFlow, absl, CUDA, MLflow/PySpark warnings, download bars)."""
    return [line for line in text.splitlines() if NOISE.search(line)]


def check_scores_from_saved_vectors(trained, name: str, user_ids: np.ndarray, directory: Path, monkeypatch) -> None:
    """A content model saved and loaded again scores `user_ids` (known and unknown) as `trained` does
    from the vectors saved with it: no tower runs, the Keras network is not read, and a fresh process
    imports neither TensorFlow nor Keras; the saved vectors are what the towers compute."""
    trained.save(directory)
    model = model_class(name).load(directory)
    monkeypatch.setattr(model, "_embed", lambda tower, inputs: pytest.fail(f"the {tower} ran"))
    np.testing.assert_array_equal(model.score_block(user_ids), trained.score_block(user_ids))
    assert model._network is None, "the Keras network was read"
    scores, imported = scores_in_fresh_process(directory, name, user_ids.tolist())
    np.testing.assert_allclose(scores, trained.score_block(user_ids), rtol=1e-12)
    assert imported == []
    monkeypatch.undo()
    saved, recomputed = model.tower_vectors(), model._compute_vectors()  # the second reads the network
    for part in ("users", "no_history", "movies", "unknown_movie"):
        np.testing.assert_allclose(getattr(saved, part), getattr(recomputed, part), atol=1e-6)
    assert len(saved.users) == len(model.user_ids) and len(saved.movies) == len(model.catalogue)


def scores_in_fresh_process(directory: Path, name: str, user_ids: list[int]) -> tuple[np.ndarray, list[str]]:
    """(score_block of `user_ids`, the modules among tensorflow/keras it imported) of the model in
    `directory` loaded as `name` in a new Python process, as evaluate and the batch stage load it
    (and with every training user's served list computed, as a serving worker does)."""
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from pipeline.models.loading import model_class\n"
        f"model = model_class({name!r}).load({str(directory)!r})\n"
        f"scores = model.score_block(np.array({user_ids!r}, np.int64))\n"
        "from pipeline.config import ServeParams\n"
        "from pipeline.serving import Answers\n"
        f"Answers(model, {name!r}, ServeParams()).precompute()  # what a serving worker does when it loads the model\n"
        "print(json.dumps({'scores': scores.tolist(), 'imported': [m for m in ('tensorflow', 'keras') if m in sys.modules]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return np.array(answer["scores"]), answer["imported"]
