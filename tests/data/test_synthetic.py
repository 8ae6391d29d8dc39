"""The synthetic generator: determinism, contract, sizes, scale, uniqueness, shape, and learnable signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds

from pipeline.config import SyntheticParams
from pipeline.data import synthetic
from pipeline.data.schema import (
    GENRE_VOCABULARY,
    MOVIES_COLUMNS,
    RATINGS_DTYPES,
    conform_movies,
    conform_ratings,
    genre_matrix,
    split_genres,
)

SMALL = SyntheticParams(n_users=60, n_movies=300, n_ratings=3_000, min_user_ratings=20, seed=1)


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic.generate(SMALL)


@pytest.fixture(scope="module")
def default() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default size (600 users, 3,000 movies, 100,000 ratings): ~0.2 s."""
    return synthetic.generate(SyntheticParams())


def test_same_seed_same_data(small):
    ratings, movies = synthetic.generate(SMALL)
    pd.testing.assert_frame_equal(ratings, small[0])
    pd.testing.assert_frame_equal(movies, small[1])


def test_other_seed_other_data(small):
    ratings, movies = synthetic.generate(SMALL.model_copy(update={"seed": 2}))
    assert not ratings.equals(small[0])
    assert not movies[["title", "genres"]].equals(small[1][["title", "genres"]])


def test_frames_are_already_in_the_contract(small):
    ratings, movies = small
    assert ratings.dtypes.astype(str).to_dict() == RATINGS_DTYPES
    assert tuple(movies.columns) == MOVIES_COLUMNS
    pd.testing.assert_frame_equal(conform_ratings(ratings), ratings)
    pd.testing.assert_frame_equal(conform_movies(movies), movies, check_dtype=False)
    assert str(movies["year"].dtype) == "Int64"


def test_sizes_are_exact(small):
    ratings, movies = small
    assert len(ratings) == SMALL.n_ratings
    assert sorted(ratings["user_id"].unique()) == list(range(1, SMALL.n_users + 1))
    assert movies["movie_id"].tolist() == list(range(1, SMALL.n_movies + 1))
    assert ratings["movie_id"].isin(movies["movie_id"]).all()


def test_every_user_has_the_minimum(small):
    assert small[0].groupby("user_id").size().min() >= SMALL.min_user_ratings


def test_ratings_are_half_stars_from_half_to_five(small):
    stars = small[0]["rating"]
    assert stars.between(0.5, 5.0).all()
    assert ((stars * 2) % 1 == 0).all()
    assert set(stars.unique()) == set(np.arange(1, 11) / 2)  # all ten values are used


def test_user_movie_pairs_are_unique(small):
    assert not small[0].duplicated(["user_id", "movie_id"]).any()


def test_genres_come_from_the_vocabulary_one_to_three_per_movie(small):
    genres = split_genres(small[1]["genres"])
    assert genres.map(len).between(1, 3).all()
    assert set(genres.explode()) <= set(GENRE_VOCABULARY)
    assert genres.map(lambda g: len(set(g)) == len(g)).all()


def test_genre_frequencies_are_skewed_like_movielens(default):
    counts = pd.Series(genre_matrix(default[1]["genres"]).sum(axis=0), index=GENRE_VOCABULARY)
    assert counts["Drama"] > 10 * counts["IMAX"]
    assert counts["Comedy"] > 10 * counts["Film-Noir"]
    assert counts.idxmax() in ("Drama", "Comedy")


def test_titles_carry_the_release_year_and_are_unique(small):
    movies = small[1]
    known = movies["year"].notna()
    expected = " (" + movies.loc[known, "year"].astype(int).astype(str) + ")"
    assert (movies.loc[known, "title"].str.slice(-7) == expected).all()
    assert movies["year"].dropna().between(synthetic.YEAR_MIN, synthetic.YEAR_MAX).all()
    assert movies["title"].is_unique


def test_timestamps_lie_in_1996_2024_and_never_before_release(default):
    ratings, movies = default
    assert ratings["timestamp"].between(synthetic.START, synthetic.END).all()
    rated_year = pd.to_datetime(ratings["timestamp"], unit="s").dt.year
    release_year = ratings["movie_id"].map(movies.set_index("movie_id")["year"])
    known = release_year.notna()
    assert (rated_year[known] >= release_year[known]).all()
    span_days = ratings.groupby("user_id")["timestamp"].agg(lambda t: (t.max() - t.min()) / 86_400)
    assert span_days.median() < 3 * 365  # users rate within an activity window, not over 29 years


def test_popularity_and_activity_are_long_tailed(default):
    ratings, _ = default
    per_movie = np.sort(ratings.groupby("movie_id").size().to_numpy())[::-1]
    assert per_movie[: len(per_movie) // 10].sum() > 0.3 * per_movie.sum()  # uniform would give 0.1
    per_user = ratings.groupby("user_id").size()
    assert per_user.max() > 10 * per_user.median()


def test_both_sampling_paths_and_several_chunks_keep_counts_exact(monkeypatch):
    """Heavy users (dense Gumbel path) and light users (rejection path), split into chunks."""
    monkeypatch.setattr(synthetic, "CHUNK_RATINGS", 700)
    params = SyntheticParams(n_users=30, n_movies=1_000, n_ratings=3_000, min_user_ratings=5, seed=3)
    world = synthetic.build_world(params)
    assert len(synthetic._chunks(world.user_counts)) > 2
    released = np.searchsorted(np.sort(world.movie_release), world.window_end, side="right")
    dense = world.user_counts * synthetic.DENSE_FACTOR >= released
    assert dense.any() and not dense.all()
    ratings, _ = synthetic.generate(params)
    assert len(ratings) == 3_000
    assert not ratings.duplicated(["user_id", "movie_id"]).any()
    counts = ratings.groupby("user_id").size().reindex(range(1, 31)).to_numpy()
    np.testing.assert_array_equal(counts, world.user_counts)


def test_smallest_valid_size():
    ratings, movies = synthetic.generate(SyntheticParams(n_users=2, n_movies=3, n_ratings=3, min_user_ratings=1))
    assert len(ratings) == 3 and len(movies) == 3
    assert not ratings.duplicated(["user_id", "movie_id"]).any()


def _genre_flags(ratings, movies):
    """Genre one-hot rows for each rating (computed per movie, then gathered)."""
    return genre_matrix(movies["genres"])[pd.Index(movies["movie_id"]).get_indexer(ratings["movie_id"])]


def _per_user_genre_average(ratings, movies, n_users):
    """Per (user, genre): sum of the user's mean-centred ratings of that genre, and how many."""
    flags = _genre_flags(ratings, movies)
    rows = np.arange(len(ratings))
    user = ratings["user_id"].to_numpy() - 1
    by_user = csr_matrix((np.ones(len(ratings)), (user, rows)), shape=(n_users, len(ratings)))
    centred = ratings["rating"].to_numpy() - ratings.groupby("user_id")["rating"].transform("mean").to_numpy()
    return by_user @ (flags * centred[:, None]), by_user @ flags


def test_a_users_genre_average_follows_their_hidden_taste(default):
    ratings, movies = default
    params = SyntheticParams()
    total, count = _per_user_genre_average(ratings, movies, params.n_users)
    enough = count >= 5
    taste = synthetic.build_world(params).taste
    correlation = np.corrcoef(total[enough] / count[enough], taste[enough])[0, 1]
    assert correlation > 0.4  # measured 0.68; no signal would give ~0


def _bias_model(train):
    mean = train["rating"].mean()
    user = (train["rating"] - mean).groupby(train["user_id"]).mean()
    rest = train["rating"] - mean - train["user_id"].map(user)
    movie = rest.groupby(train["movie_id"]).sum() / (rest.groupby(train["movie_id"]).count() + 5)

    def predict(frame):
        known_user = frame["user_id"].map(user).fillna(0).to_numpy()
        return mean + known_user + frame["movie_id"].map(movie).fillna(0).to_numpy()

    return predict


def _holdout(ratings):
    test = np.random.default_rng(0).random(len(ratings)) < 0.2
    return ratings[~test], ratings[test]


def _rmse(frame, predicted):
    return float(np.sqrt(np.mean((frame["rating"].to_numpy() - predicted) ** 2)))


def test_genre_affinity_beats_biases_on_held_out_ratings(default):
    """What a content-based model can learn: a user's genre averages predict unseen ratings."""
    ratings, movies = default
    train, test = _holdout(ratings)
    bias = _bias_model(train)
    residual = train.assign(rating=train["rating"] - bias(train))
    total, count = _per_user_genre_average(residual, movies, 600)
    affinity = total / (count + 5)
    flags = _genre_flags(test, movies)
    genre_term = (affinity[test["user_id"].to_numpy() - 1] * flags).sum(axis=1) / flags.sum(axis=1)
    assert _rmse(test, bias(test) + genre_term) < _rmse(test, bias(test)) - 0.03  # measured 0.817 -> 0.762


def test_low_rank_structure_beats_biases_on_held_out_ratings(default):
    """What collaborative filtering can learn: a rank-8 SVD of the residuals predicts unseen ratings.

    The gain is small: users pick the movies whose p . q is high (LATENT_CHOICE), so the p . q of
    one user's rated movies are alike and their user bias absorbs much of it (picks blind to the
    factors gave 0.850 -> 0.837). Which movies a user picks carries the rest (next test).
    """
    ratings, _ = default
    train, test = _holdout(ratings)
    bias = _bias_model(train)
    pairs = (train["user_id"] - 1, train["movie_id"] - 1)
    residual = csr_matrix((train["rating"] - bias(train), pairs), shape=(600, 3000))
    u, s, vt = svds(residual, k=8, random_state=0)
    low_rank = np.einsum("ij,ij->i", (u * s)[test["user_id"] - 1], vt.T[test["movie_id"] - 1])
    assert _rmse(test, bias(test) + low_rank) < _rmse(test, bias(test)) - 0.003  # measured 0.817 -> 0.812


def test_low_rank_structure_of_the_picks_beats_popularity(default):
    """What a ranking model can learn: a rank-8 SVD of who rated what finds a user's held-out movies."""
    ratings, _ = default
    train, test = _holdout(ratings)
    seen = csr_matrix((np.ones(len(train)), (train["user_id"] - 1, train["movie_id"] - 1)), shape=(600, 3000))
    held_out = csr_matrix((np.ones(len(test)), (test["user_id"] - 1, test["movie_id"] - 1)), shape=(600, 3000)).toarray()
    u, s, vt = svds(seen, k=8, random_state=0)

    def recall_at_10(scores):
        top = np.argsort(-np.where(seen.toarray() > 0, -np.inf, scores), axis=1)[:, :10]
        return np.take_along_axis(held_out, top, axis=1).sum() / len(test)

    popularity = np.broadcast_to(np.asarray(seen.sum(axis=0)), seen.shape)
    # measured 0.076 vs 0.057; picks blind to the factors gave 0.090 vs 0.086
    assert recall_at_10((u * s) @ vt) > 1.2 * recall_at_10(popularity)


def test_mean_rating_and_share_of_four_stars_are_movielens_like(default):
    """ml-latest-small: mean 3.50, 48% of ratings >= 4 (GLOBAL_MEAN offsets the taste-driven picks)."""
    stars = default[0]["rating"]
    assert 3.45 < stars.mean() < 3.65  # measured 3.552
    assert 0.43 < (stars >= 4).mean() < 0.53  # measured 0.481


def test_users_pick_the_movies_their_latent_factors_like(default):
    """Ratings are missing not at random: p_user . q_movie is high on the rated pairs."""
    ratings, _ = default
    world = synthetic.build_world(SyntheticParams())
    user, movie = ratings["user_id"].to_numpy() - 1, ratings["movie_id"].to_numpy() - 1
    rated = np.einsum("ij,ij->i", world.user_factors[user], world.movie_factors[movie])
    assert rated.mean() > 0.25  # measured 0.34 stars; picks blind to the factors give ~0 (sd of p . q: 0.41)


def _tilted_mixture(world, picker, user):
    """P(movie) of one draw for `user`, computed from the World as the module docstring describes."""
    mixture = synthetic.GENRE_DRIVEN * (world.genre_choice[user] @ picker.genre_weights)
    mixture += (1 - synthetic.GENRE_DRIVEN) * world.popularity
    latent = world.movie_factors @ world.user_factors[user]
    odds = mixture * np.exp(synthetic.LATENT_CHOICE * np.minimum(latent, synthetic.LATENT_CHOICE_CAP))
    return odds / odds.sum()


def test_draws_and_dense_weights_follow_the_mixture_tilted_by_the_latent_odds():
    """The light path (rejection sampling) and the dense path (and the benchmark's oracle) share one law."""
    world = synthetic.build_world(SyntheticParams(n_users=3, n_movies=200, n_ratings=300, min_user_ratings=20, seed=4))
    picker = synthetic._Picker(world)
    for user in range(3):
        expected = _tilted_mixture(world, picker, user)
        draws = picker.draw(np.full(1_000_000, user), np.random.default_rng(user))
        observed = np.bincount(draws, minlength=200) / len(draws)
        assert np.abs(observed - expected).sum() / 2 < 0.006  # total variation; measured 0.004 (untilted: 0.5)
        released = picker.released(np.array([user]), np.arange(200))
        dense = np.where(released, expected, 0) / expected[released].sum()
        np.testing.assert_allclose(picker.weights(np.array([user]))[0], dense, rtol=1e-5)


def test_inverse_cdf_agrees_with_binary_search():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 3_000):
        cdf = np.cumsum((rng.permutation(n) + 20.0) ** -1.0)
        segmented = np.repeat(np.arange(3), n) + np.tile(cdf / cdf[-1], 3)  # the genre pools' layout
        for values in (cdf / cdf[-1], segmented):
            u = np.concatenate((rng.random(50_000) * values[-1], values, np.nextafter(values, -np.inf), [0.0]))
            expected = np.minimum(np.searchsorted(values, u, side="right"), len(values) - 1)
            np.testing.assert_array_equal(synthetic._InverseCdf(values)(u), expected)
