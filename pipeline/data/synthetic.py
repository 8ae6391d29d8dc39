"""Offline MovieLens-shaped data: a seeded, vectorized generator of users, movies and ratings.

The hidden model (a `World`) is drawn first; ratings are then produced user-chunk by user-chunk
so memory stays O(ratings) even at 25 million ratings. A rating is

    clip(round_to_step(mean + b_user + b_movie + taste_user . genres_movie + p_user . q_movie + noise))

where `taste . genres` is the user's average taste over the movie's genres, and each user rounds
either to half stars or to whole stars. Which movies a user rates is drawn from a mixture of
global (Zipf-like) popularity and the user's favourite genres, tilted toward the movies the user's
latent factors like (p_user . q_movie, see LATENT_CHOICE), without replacement, so every
(user, movie) pair is unique and every user has exactly the number of ratings drawn for them:
the total is exactly `n_ratings`. Each user is active in a window inside 1996-2024, rates only
movies released by its end, and never before a movie's release year.

Same params -> same frames. CHUNK_RATINGS is part of the definition: each chunk draws from its
own seeded stream, so changing it changes the data (not its distribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import SyntheticParams
from pipeline.data.schema import GENRE_SEPARATOR, GENRE_VOCABULARY, GENRES, MOVIE, RATING, TIMESTAMP, TITLE, USER, YEAR, RatingScale

SCALE = RatingScale(0.5, 5.0, 0.5)

# Share of MovieLens (ml-latest-small) movies carrying each genre: Drama and Comedy common, IMAX and
# Film-Noir rare. Used as sampling weights when movies draw their genres.
GENRE_SHARE = dict(
    zip(
        GENRE_VOCABULARY,
        (
            0.19,
            0.14,
            0.06,
            0.07,
            0.40,
            0.13,
            0.04,
            0.45,
            0.08,
            0.01,
            0.10,
            0.02,
            0.03,
            0.06,
            0.15,
            0.10,
            0.20,
            0.04,
            0.02,
        ),
        strict=True,
    )
)
# Genre-level rating offsets (real data: film-noir and documentaries rate high, horror low).
GENRE_OFFSET = dict(
    zip(
        GENRE_VOCABULARY,
        (
            -0.05,
            0.0,
            0.1,
            -0.15,
            -0.05,
            0.1,
            0.2,
            0.15,
            -0.05,
            0.25,
            -0.3,
            0.1,
            0.0,
            0.05,
            0.0,
            -0.05,
            -0.05,
            0.2,
            0.05,
        ),
        strict=True,
    )
)
GENRE_COUNT_PROBS = (0.4, 0.35, 0.25)  # a movie has 1, 2 or 3 genres

GLOBAL_MEAN = 3.0  # ratings average ~3.55 (popular movies and those a user picks by taste rate higher)
USER_BIAS_SD = 0.35
MOVIE_BIAS_SD = 0.35
POPULARITY_QUALITY = 0.2  # popular movies are rated a little higher
TASTE_SD = 0.6
N_FACTORS = 8
FACTOR_SD = 0.38  # p . q has sd ~ 0.4
NOISE_SD = 0.6
HALF_STAR_USERS = 0.5  # share of users who use half stars; the others round to whole stars

ZIPF_EXPONENT = 1.0  # popularity of the movie at rank r ~ (r + ZIPF_OFFSET) ** -ZIPF_EXPONENT
ZIPF_OFFSET = 20.0
MAX_USER_SHARE = 0.6  # no user rates more than this share of the catalogue
ACTIVITY_SIGMA = 1.3  # lognormal spread of extra ratings per user (long-tailed activity)
GENRE_DRIVEN = 0.5  # share of a user's picks drawn from their favourite genres
GENRE_CHOICE_SHARPNESS = 1.5  # how strongly taste steers which genres a user watches
# Real users mostly rate what they expect to like (ratings are missing not at random), so the odds
# of picking a movie are also multiplied by exp(LATENT_CHOICE * min(p . q, LATENT_CHOICE_CAP)):
# the latent part of the expected rating, which neither popularity nor genres reveal. Picks blind
# to it left the ranking models level with popularity (nDCG@10 vs popularity: cofi_ranking -8%,
# content_ranking +12%, EASE -5%). 3.5 gives +75%, +71% and +84% on the default data, close to
# ml-latest-small's +94%, +79% and +86%; 3.0 gave +68%, +50% and +66%
# (benchmarks/bench_ranking_models.py --datasets synthetic; content_ranking then trained 10 epochs,
# now 6: +46% here, +73% on ml-latest-small).
LATENT_CHOICE = 3.5  # per star of p . q (odds x4.2 per standard deviation of p . q)
LATENT_CHOICE_CAP = 1.0  # stars (2.4 sd of p . q); bounds the odds: rejection sampling keeps 1 draw in 14

START = 820_454_400  # 1996-01-01 UTC
END = 1_735_689_599  # 2024-12-31 23:59:59 UTC
DAY = 86_400
YEAR_MIN, YEAR_MAX = 1920, 2024
UNKNOWN_YEAR_SHARE = 0.002

CHUNK_RATINGS = 1_000_000  # ratings generated per user chunk (bounds peak memory)
DENSE_FACTOR = 8  # users rating >= 1/DENSE_FACTOR of the movies out in their window: dense-row sampling

_ADJECTIVES = [
    "Silent",
    "Broken",
    "Last",
    "Golden",
    "Hidden",
    "Lost",
    "Dark",
    "Bright",
    "Crimson",
    "Wild",
    "Secret",
    "Endless",
    "Frozen",
    "Burning",
    "Distant",
    "Little",
    "Final",
    "Forgotten",
    "Midnight",
    "Electric",
    "Savage",
    "Gentle",
    "Hollow",
    "Iron",
    "Lonely",
    "Northern",
    "Painted",
    "Quiet",
    "Restless",
    "Scarlet",
    "Shattered",
    "Stolen",
    "Summer",
    "Sweet",
    "Velvet",
    "Wicked",
    "Winter",
    "Young",
    "Bitter",
    "Blue",
    "Cold",
    "Dangerous",
    "Deadly",
    "Empty",
    "First",
    "Glass",
    "Great",
    "Happy",
    "Holy",
    "Invisible",
    "Long",
    "Lucky",
    "Mad",
    "Perfect",
    "Red",
    "Royal",
    "Second",
    "Strange",
    "True",
]
_NOUNS = (  # noqa: SIM905 (one string reads better); one accented word keeps non-ASCII titles in play, as in MovieLens
    "River Night Kingdom Heart Road City Storm Garden Shadow Dream Empire Island Mirror Promise "
    "Stranger Journey Secret Moon Ocean Fire Letter Station Family Game Hunter Witness Machine "
    "Planet Harbor Mountain Frontier Circus Détective Soldier Angel Ghost Thief Dancer Kid Lady "
    "Stars Summer Winter Affair Bridge Castle Code Diary Echo Forest Highway Horizon Legacy "
    "Memory Orchard Voyage Wind"
).split()


@dataclass(frozen=True)
class World:
    """The hidden model behind a synthetic data set (exposed for tests and benchmarks)."""

    movie_genres: np.ndarray  # (n_movies, 3) int8 genre indices, padded with len(GENRE_VOCABULARY)
    movie_year: np.ndarray  # (n_movies,) float64, NaN when unknown
    movie_bias: np.ndarray  # (n_movies,) float32
    movie_factors: np.ndarray  # (n_movies, N_FACTORS) float32
    popularity: np.ndarray  # (n_movies,) float64, sums to 1
    user_counts: np.ndarray  # (n_users,) int64 ratings per user, sums to n_ratings
    user_bias: np.ndarray  # (n_users,) float32
    taste: np.ndarray  # (n_users, n_genres) float32
    user_factors: np.ndarray  # (n_users, N_FACTORS) float32
    genre_choice: np.ndarray  # (n_users, n_genres) float64 rows sum to 1: which genres a user watches
    half_stars: np.ndarray  # (n_users,) bool
    movie_release: np.ndarray  # (n_movies,) float64 unix time of January 1st of the year, -inf if unknown
    window_end: np.ndarray  # (n_users,) float64 unix time a user's activity window ends
    window_length: np.ndarray  # (n_users,) float64 seconds a user is active


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per stream (movies, users, each chunk), all derived from `seed`."""
    return np.random.default_rng(np.random.SeedSequence(seed % 2**64, spawn_key=(stream,)))


def _movie_genres(n_movies: int, rng: np.random.Generator) -> np.ndarray:
    """1-3 distinct genres per movie, weighted by GENRE_SHARE (Gumbel top-k), padded with n_genres."""
    n_genres = len(GENRE_VOCABULARY)
    weights = np.log(np.array([GENRE_SHARE[g] for g in GENRE_VOCABULARY]))
    keys = weights + rng.gumbel(size=(n_movies, n_genres))
    top = np.argsort(-keys, axis=1)[:, :3]
    how_many = rng.choice(3, size=n_movies, p=GENRE_COUNT_PROBS) + 1
    top[np.arange(3)[None, :] >= how_many[:, None]] = n_genres
    return np.sort(top, axis=1).astype(np.int8)


def _genre_flags(movie_genres: np.ndarray) -> np.ndarray:
    """(n_movies, n_genres + 1) one-hot flags; the last column collects the padding."""
    flags = np.zeros((len(movie_genres), len(GENRE_VOCABULARY) + 1), dtype=np.float32)
    np.put_along_axis(flags, movie_genres.astype(np.int64), 1.0, axis=1)
    return flags


def _user_counts(params: SyntheticParams, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: min_user_ratings plus a long-tailed share of the rest.

    Capped at MAX_USER_SHARE of the catalogue (feasible: the config keeps n_ratings <= half of all pairs).
    """
    extra = params.n_ratings - params.n_users * params.min_user_ratings
    room = max(math.ceil(MAX_USER_SHARE * params.n_movies), params.min_user_ratings) - params.min_user_ratings
    weights = rng.lognormal(0.0, ACTIVITY_SIGMA, params.n_users)
    counts = np.zeros(params.n_users, dtype=np.int64)
    while extra > 0:  # a few passes at most: overflow above the cap goes to users with room
        open_weights = np.where(counts < room, weights, 0.0)
        counts += rng.multinomial(extra, open_weights / open_weights.sum())
        extra = int(np.maximum(counts - room, 0).sum())
        counts = np.minimum(counts, room)
    return counts + params.min_user_ratings


def build_world(params: SyntheticParams) -> World:
    """Draw the hidden users and movies (everything except the individual ratings)."""
    n_users, n_movies, n_genres = params.n_users, params.n_movies, len(GENRE_VOCABULARY)
    rng = _rng(params.seed, 0)
    movie_genres = _movie_genres(n_movies, rng)
    n_of = (movie_genres < n_genres).sum(axis=1)
    offsets = np.append(np.array([GENRE_OFFSET[g] for g in GENRE_VOCABULARY]), 0.0)
    genre_offset = offsets[movie_genres].sum(axis=1) / n_of

    rank = rng.permutation(n_movies)
    popularity = (rank + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()
    log_pop = np.log(popularity)
    quality = POPULARITY_QUALITY * (log_pop - log_pop.mean()) / (log_pop.std() + 1e-12)
    movie_bias = rng.normal(0.0, MOVIE_BIAS_SD, n_movies) + quality + genre_offset

    year = np.clip(np.round(YEAR_MAX - rng.gamma(2.0, 12.0, n_movies)), YEAR_MIN, YEAR_MAX)
    year[rng.random(n_movies) < UNKNOWN_YEAR_SHARE] = np.nan

    urng = _rng(params.seed, 1)
    counts = _user_counts(params, urng)
    taste = urng.normal(0.0, TASTE_SD, (n_users, n_genres))
    genre_mass = _genre_flags(movie_genres)[:, :n_genres].T @ popularity  # popularity held by each genre
    choice = np.where(genre_mass > 0, genre_mass, 0.0) * np.exp(GENRE_CHOICE_SHARPNESS * taste)
    release = _release_times(year)
    # A user rates only movies released by the end of their activity window, so the window must
    # end late enough for count / MAX_USER_SHARE movies to be out.
    needed = np.minimum(np.ceil(counts / MAX_USER_SHARE).astype(np.int64), n_movies)
    end = np.maximum(urng.uniform(START + 30 * DAY, END, n_users), np.sort(release)[needed - 1] + DAY)
    return World(
        movie_genres=movie_genres,
        movie_year=year,
        movie_bias=movie_bias.astype(np.float32),
        movie_factors=rng.normal(0.0, FACTOR_SD, (n_movies, N_FACTORS)).astype(np.float32),
        popularity=popularity,
        user_counts=counts,
        user_bias=urng.normal(0.0, USER_BIAS_SD, n_users).astype(np.float32),
        taste=taste.astype(np.float32),
        user_factors=urng.normal(0.0, FACTOR_SD, (n_users, N_FACTORS)).astype(np.float32),
        genre_choice=choice / choice.sum(axis=1, keepdims=True),
        half_stars=urng.random(n_users) < HALF_STAR_USERS,
        movie_release=release,
        window_end=end,
        window_length=np.minimum(urng.exponential(DAY * (30.0 + 2.0 * counts)), end - START),
    )


class _InverseCdf:
    """min(searchsorted(cdf, u, side="right"), len(cdf) - 1) in O(1) expected steps (a guide table).

    The rejection sampling of `_Picker.draw` makes many proposals per rating; a binary search per
    proposal was most of the generator's time.
    """

    def __init__(self, cdf: np.ndarray) -> None:
        self.cdf = np.append(cdf, np.inf)  # the sentinel stops every walk
        self.slices = len(cdf) / (cdf[-1] - cdf[0] + 1e-300)
        self.start = cdf[0]
        # Entries in slices before u's own are <= u (the slice map is monotone), so the walk starts there.
        self.guide = np.searchsorted(self._slice(cdf), np.arange(len(cdf)), side="left")

    def _slice(self, u: np.ndarray) -> np.ndarray:
        return np.clip((u - self.start) * self.slices, 0, len(self.cdf) - 2).astype(np.int64)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        at = self.guide[self._slice(u)]
        behind = np.flatnonzero(self.cdf[at] <= u)
        while len(behind):
            at[behind] += 1
            behind = behind[self.cdf[at[behind]] <= u[behind]]
        return np.minimum(at, len(self.guide) - 1)


def _latent_log_odds(latent: np.ndarray) -> np.ndarray:
    """Log of the pick odds that p_user . q_movie adds, relative to their cap (so <= 0)."""
    return LATENT_CHOICE * (np.minimum(latent, LATENT_CHOICE_CAP) - LATENT_CHOICE_CAP)


class _Picker:
    """Draws movies for users from the mixture of global popularity and favourite-genre popularity,
    tilted by the latent pick odds.

    Movies released after a user's window end are never drawn for that user.
    """

    def __init__(self, world: World) -> None:
        n_genres, n_movies = len(GENRE_VOCABULARY), len(world.popularity)
        self.world = world
        # Segment g < n_genres holds the movies of genre g, segment n_genres every movie (global
        # popularity); concatenated segment by segment, the cdf of segment s runs over (s, s + 1].
        movie, slot = np.nonzero(world.movie_genres < n_genres)
        genre = world.movie_genres[movie, slot].astype(np.int64)
        order = np.lexsort((movie, genre))
        self.pool_movie = np.concatenate((movie[order], np.arange(n_movies)))
        segment = np.concatenate((genre[order], np.full(n_movies, n_genres)))
        weight = world.popularity[self.pool_movie]
        weight /= np.bincount(segment, weights=weight, minlength=n_genres + 1)[segment]  # probability within its segment
        self.pool_pick = _InverseCdf(segment + pd.Series(weight).groupby(segment).cumsum().to_numpy())
        # User u's segment odds (GENRE_DRIVEN spread by genre_choice, the rest on popularity) as the
        # cdf over (u, u + 1], concatenated user by user.
        odds = np.concatenate((GENRE_DRIVEN * world.genre_choice, np.full((len(world.genre_choice), 1), 1.0 - GENRE_DRIVEN)), axis=1)
        cdf = np.cumsum(odds, axis=1)
        self.segment_pick = _InverseCdf((np.arange(len(cdf))[:, None] + cdf / cdf[:, -1:]).ravel())
        in_genre = segment < n_genres
        self.genre_weights = np.zeros((n_genres, n_movies))  # (genre, movie) probabilities
        self.genre_weights[segment[in_genre], self.pool_movie[in_genre]] = weight[in_genre]

    def draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One movie per entry of `users` (with replacement), with probability mixture x exp(tilt).

        Rejection sampling: a movie drawn from the mixture is kept with probability exp(tilt) <= 1;
        entries whose movie was rejected draw again.
        """
        movies = np.empty(len(users), dtype=np.int64)
        pending = np.arange(len(users))
        while len(pending):
            proposed = self._draw_mixture(users[pending], rng)
            kept = rng.random(len(pending)) < np.exp(self.tilt(users[pending], proposed))
            movies[pending[kept]] = proposed[kept]
            pending = pending[~kept]
        return movies

    def tilt(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Log of the latent pick odds of each (user, movie) pair, relative to their cap (so <= 0)."""
        return _latent_log_odds(np.einsum("ij,ij->i", self.world.user_factors[users], self.world.movie_factors[movies]))

    def _draw_mixture(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One movie per entry of `users` from the popularity / favourite-genre mixture: a segment, then a movie in it."""
        segment = self.segment_pick(users + rng.random(len(users))) - users * (len(GENRE_VOCABULARY) + 1)
        return self.pool_movie[self.pool_pick(segment + rng.random(len(users)))]

    def released(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Whether each movie was out by the end of the user's activity window."""
        return self.world.movie_release[movies] <= self.world.window_end[users]

    def weights(self, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_movies) probabilities of `draw`, each row over the user's released movies."""
        mix = GENRE_DRIVEN * (self.world.genre_choice[users] @ self.genre_weights)
        mix += (1.0 - GENRE_DRIVEN) * self.world.popularity[None, :]
        mix *= np.exp(_latent_log_odds(self.world.user_factors[users] @ self.world.movie_factors.T))
        mix = np.where(self.released(users[:, None], np.arange(mix.shape[1])[None, :]), mix, 0.0)
        return mix / mix.sum(axis=1, keepdims=True)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for the successive occurrences of each value of `groups` (in array order)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - np.repeat(starts, lengths)
    return ranks


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership of `keys` in a sorted array (np.isin hashes, and is far slower on int64 keys)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def _sample_light(users: np.ndarray, counts: np.ndarray, picker: _Picker, rng: np.random.Generator) -> np.ndarray:
    """Distinct movies per user by drawing with replacement and keeping first occurrences.

    Keeping the first distinct draws is exactly weighted sampling without replacement. Users here
    rate under 1/DENSE_FACTOR of the movies out in their window, so each round fills much of what
    is missing.
    Returns pair keys user * n_movies + movie.
    """
    n_movies = len(picker.world.popularity)
    accepted = np.empty(0, dtype=np.int64)
    missing = counts.copy()
    while missing.sum() > 0:
        who = np.repeat(np.arange(len(users)), np.where(missing > 0, np.ceil(missing * 1.3).astype(np.int64) + 1, 0))
        movies = picker.draw(users[who], rng)
        keys = (who * n_movies + movies)[picker.released(users[who], movies)]
        keys = keys[~_contains(accepted, keys)]
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
        local = keys // n_movies
        keys = keys[_rank_within(local) < missing[local]]
        accepted = np.sort(np.concatenate((accepted, keys)))
        missing = counts - np.bincount(accepted // n_movies, minlength=len(users))
    return accepted


def _sample_dense(users: np.ndarray, counts: np.ndarray, picker: _Picker, rng: np.random.Generator) -> np.ndarray:
    """Distinct movies per heavy user by Gumbel top-k on a dense row (same distribution as above)."""
    n_movies = len(picker.world.popularity)
    with np.errstate(divide="ignore"):  # unreleased movies: log(0) = -inf, never taken
        keys = np.log(picker.weights(users)) + rng.gumbel(size=(len(users), n_movies))
    order = np.argsort(-keys, axis=1)
    taken = np.arange(n_movies)[None, :] < counts[:, None]
    local = np.broadcast_to(np.arange(len(users))[:, None], order.shape)
    return local[taken] * n_movies + order[taken]


def _pairs(users: np.ndarray, picker: _Picker, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie) index pairs for a chunk of users, sorted by user then movie."""
    n_movies = len(picker.world.popularity)
    counts = picker.world.user_counts[users]
    out = np.searchsorted(np.sort(picker.world.movie_release), picker.world.window_end[users], side="right")
    heavy = np.flatnonzero(counts * DENSE_FACTOR >= out)
    light = np.flatnonzero(counts * DENSE_FACTOR < out)
    batches = [(light, _sample_light)]
    per_batch = max(1, CHUNK_RATINGS // n_movies)  # dense rows: at most ~CHUNK_RATINGS cells at a time
    batches += [(heavy[i : i + per_batch], _sample_dense) for i in range(0, len(heavy), per_batch)]
    user_parts, movie_parts = [], []
    for rows, sample in batches:
        keys = sample(users[rows], counts[rows], picker, rng)
        user_parts.append(users[rows][keys // n_movies])
        movie_parts.append(keys % n_movies)
    user, movie = np.concatenate(user_parts), np.concatenate(movie_parts)
    order = np.lexsort((movie, user))
    return user[order], movie[order]


def _ratings(world: World, user: np.ndarray, movie: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stars for each (user, movie) pair: the model of the module docstring, rounded and clipped."""
    n_genres = len(GENRE_VOCABULARY)
    taste = np.concatenate((world.taste, np.zeros((len(world.taste), 1), np.float32)), axis=1)
    genres = world.movie_genres[movie]
    affinity = sum(taste[user, genres[:, s]] for s in range(genres.shape[1]))
    affinity /= (genres < n_genres).sum(axis=1)
    latent = np.einsum("ij,ij->i", world.user_factors[user], world.movie_factors[movie])
    score = GLOBAL_MEAN + world.user_bias[user] + world.movie_bias[movie] + affinity + latent
    score += rng.normal(0.0, NOISE_SD, len(user)).astype(np.float32)
    half = world.half_stars[user]
    stars = np.where(half, np.round(score * 2) / 2, np.round(score))
    return np.clip(stars, np.where(half, SCALE.min, 1.0), SCALE.max).astype(np.float64)


def _release_times(year: np.ndarray) -> np.ndarray:
    """Unix time of January 1st of each release year; -inf when the year is unknown."""
    known = ~np.isnan(year)
    release = np.full(len(year), -np.inf)
    january_first = (year[known] - 1970).astype(np.int64).astype("datetime64[Y]")
    release[known] = january_first.astype("datetime64[s]").astype(np.int64)
    return release


def _timestamps(world: World, user: np.ndarray, movie: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Times inside each user's activity window, never before the rated movie's release."""
    release = world.movie_release[movie]
    end = world.window_end[user]
    when = end - rng.random(len(user)) * world.window_length[user]
    after_release = release + rng.random(len(user)) * np.minimum(180 * DAY, end - release)
    return np.maximum(when, after_release).astype(np.int64)


def _titles(year: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique titles like "The Silent River (1987)"; repeated names get a sequel number."""
    n = len(year)
    adjective = np.array(_ADJECTIVES, dtype=object)[rng.integers(len(_ADJECTIVES), size=n)]
    noun = np.array(_NOUNS, dtype=object)[rng.integers(len(_NOUNS), size=n)]
    other = np.array(_NOUNS, dtype=object)[rng.integers(len(_NOUNS), size=n)]
    pattern = rng.integers(3, size=n)
    name = np.select([pattern == 0, pattern == 1], ["The " + adjective + " " + noun, adjective + " " + noun], noun + " of the " + other)
    sequel = pd.Series(name).groupby(name).cumcount().to_numpy()
    name = np.where(sequel > 0, name + " " + (sequel + 1).astype(str).astype(object), name)
    known = ~np.isnan(year)
    suffix = np.where(known, " (" + np.nan_to_num(year).astype(int).astype(str).astype(object) + ")", "")
    return name + suffix


def movies_frame(world: World, seed: int) -> pd.DataFrame:
    """The movies table (contract columns) of a world."""
    names = np.array([*GENRE_VOCABULARY, ""], dtype=object)[world.movie_genres]
    genres = pd.Series(names[:, 0])
    for slot in range(1, names.shape[1]):
        genres = genres.str.cat(pd.Series(names[:, slot]), sep=GENRE_SEPARATOR)
    genres = genres.str.strip(GENRE_SEPARATOR)
    return pd.DataFrame(
        {
            MOVIE: np.arange(1, len(world.movie_year) + 1, dtype=np.int64),
            TITLE: _titles(world.movie_year, _rng(seed, 2)),
            YEAR: pd.array(world.movie_year, dtype="Float64").astype("Int64"),
            GENRES: genres.astype(object),
        }
    )


def _chunks(counts: np.ndarray) -> list[np.ndarray]:
    """Consecutive user ranges holding about CHUNK_RATINGS ratings each."""
    bounds = np.searchsorted(np.cumsum(counts), np.arange(CHUNK_RATINGS, counts.sum(), CHUNK_RATINGS))
    return [c for c in np.split(np.arange(len(counts)), np.unique(bounds)) if len(c)]


def generate(params: SyntheticParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded synthetic (ratings, movies) in the data contract: exactly params.n_ratings ratings."""
    world = build_world(params)
    picker = _Picker(world)
    columns = {
        USER: np.empty(params.n_ratings, np.int64),
        MOVIE: np.empty(params.n_ratings, np.int64),
        RATING: np.empty(params.n_ratings, np.float64),
        TIMESTAMP: np.empty(params.n_ratings, np.int64),
    }
    done = 0
    for index, users in enumerate(_chunks(world.user_counts)):  # filled in place: no concat copy
        rng = _rng(params.seed, 100 + index)
        user, movie = _pairs(users, picker, rng)
        rows = slice(done, done + len(user))
        columns[USER][rows], columns[MOVIE][rows] = user + 1, movie + 1
        columns[RATING][rows] = _ratings(world, user, movie, rng)
        columns[TIMESTAMP][rows] = _timestamps(world, user, movie, rng)
        done += len(user)
    return pd.DataFrame(columns, copy=False), movies_frame(world, params.seed)
