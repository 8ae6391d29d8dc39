"""The report: table, Markdown, and a self-contained HTML page naming every model."""

from __future__ import annotations

import base64
import io
import itertools
import re
from html.parser import HTMLParser
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from pipeline.data.schema import GENRES, MOVIE, TITLE
from pipeline.evaluation.report import (
    MAP_GENRES,
    MAP_MOVIES,
    OTHER,
    activity_figure,
    curve_figure,
    first_genres,
    html_report,
    markdown_report,
    metrics_table,
    movie_map,
    principal_axes,
    rmse_chart,
)
from pipeline.models.base import ParameterCounts

EVALUATION = {
    "cofi": {
        "rmse": 0.87654, "mae": 0.67, "precision_at_k": 0.1, "recall_at_k": 0.2, "ndcg_at_k": 0.15, "map_at_k": 0.05,
        "coverage": 0.3, "n_test_ratings": 20168, "n_ranked_users": 599, "cold": {"rmse": 0.99, "mae": 0.8, "n_test_ratings": 12},
    },
    "popularity": {
        "precision_at_k": 0.12, "recall_at_k": 0.1, "ndcg_at_k": 0.16, "map_at_k": 0.08, "coverage": 0.006,
        "n_test_ratings": 20168, "n_ranked_users": 599, "cold": {"n_test_ratings": 12},
    },
}  # fmt: skip
ACTIVITY = pd.DataFrame(
    {"model": ["cofi", "cofi"], "activity": ["1-4", "5-9"], "n_test_ratings": [3, 4], "rmse": [1.1, 0.9], "mae": [0.9, 0.7]}
)
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def test_metrics_table_has_a_row_per_model_and_blanks_for_missing_metrics():
    table = metrics_table(EVALUATION, k=10)
    assert list(table.index) == ["cofi", "popularity"]
    assert table.loc["cofi", "nDCG@10"] == 0.15 and table.loc["cofi", "cold RMSE"] == 0.99
    assert np.isnan(table.loc["popularity", "RMSE"])


def test_markdown_report_is_a_table_with_each_model():
    text = markdown_report(EVALUATION, 10, "Protocol sentence.")
    lines = text.splitlines()
    assert "Protocol sentence." in text
    header = next(line for line in lines if line.startswith("| model"))
    assert "| RMSE |" in header and "| P@10 |" in header and "| nDCG@10 |" in header
    assert "| cofi | 0.8765 | 0.6700 |" in text
    assert "| popularity | - | - | 0.1200 |" in text
    assert "20,168" in text


def test_html_report_is_one_offline_page_with_every_model_and_figure():
    curves = {"cofi": pd.DataFrame({"iteration": [0, 1, 2], "cost": [3.0, 2.0, 1.5]})}
    page = html_report(EVALUATION, 10, "Protocol.", curves, ACTIVITY)
    assert page.startswith("<!DOCTYPE html>")
    for name in EVALUATION:
        assert f"<td>{name}</td>" in page
    images = IMAGE.findall(page)
    assert len(images) == 4  # RMSE, nDCG bars, learning curve, error by activity
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert "Learning curves" in page and "Error by user activity" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere


def test_html_report_without_curves_or_rating_models_still_renders():
    only_popularity = {"popularity": EVALUATION["popularity"]}
    page = html_report(only_popularity, 10, "Protocol.", {}, ACTIVITY.head(0))
    assert "<td>popularity</td>" in page and "Learning curves" not in page
    assert len(IMAGE.findall(page)) == 1  # nDCG bars only


def test_learning_curves_plot_every_numeric_column_against_the_step_column():
    figure = curve_figure("content", pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}))
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "val_loss"]
    assert lines[0].get_xdata().tolist() == [1, 2]
    assert curve_figure("empty", pd.DataFrame({"epoch": []})) is None


FAMILIES = {"cofi": {"rating": "cofi", "ranking": "cofi_ranking"}, "content": {"rating": "content", "ranking": "content_ranking"}}
BOTH = {
    **EVALUATION,
    "cofi_ranking": {
        **{"precision_at_k": 0.22, "recall_at_k": 0.3, "ndcg_at_k": 0.31, "map_at_k": 0.2},
        **{"coverage": 0.05, "n_test_ratings": 20168},
    },
    "ease": {"skipped": "ease: 30,000 movies have a positive training rating, more than evaluate.ease.max_movies 20,000"},
}  # fmt: skip


def test_the_report_puts_each_familys_two_objectives_side_by_side_and_names_skipped_models():
    markdown = markdown_report(BOTH, 10, "protocol", FAMILIES)
    section = markdown.split("## Rating vs ranking objective")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| model", "| cofi", "| cofi_ranking", "| popularity"]
    assert "| cofi_ranking | cofi: ranking objective | 0.3100 |" in section
    assert "never learns which movies a user would choose" in section
    assert "ease was skipped: ease: 30,000 movies" in markdown and "| ease |" not in markdown
    page = html_report(BOTH, 10, "protocol", {}, ACTIVITY, FAMILIES)
    assert "Rating vs ranking objective" in page and "<td>cofi: ranking objective</td>" in page
    assert "ease was skipped" in page


def test_without_a_ranking_model_there_is_no_objectives_section():
    assert "Rating vs ranking" not in markdown_report(EVALUATION, 10, "protocol", FAMILIES)


# ---- parameters ---------------------------------------------------------------------------------
PARAMETERS = {
    "cofi": ParameterCounts(per_user=600 * 51, per_movie=3000 * 50, shared=0, parts="w_j, b_j: 600 users x (50 + 1)"),
    "cofi_ranking": ParameterCounts(per_user=600 * 65, per_movie=3000 * 64, shared=0, parts="x_i: 3,000 movies x 64"),
    "content": ParameterCounts(per_user=0, per_movie=0, shared=85_568, parts="user tower 42,656 + movie tower 42,912"),
    "content_ranking": ParameterCounts(per_user=0, per_movie=3000 * 32, shared=101_984, parts="towers"),
}


def test_the_parameters_section_splits_each_model_and_family_into_per_user_per_movie_and_shared():
    markdown = markdown_report(EVALUATION, 10, "protocol", FAMILIES, PARAMETERS)
    section = markdown.split("## Parameters: per user, per movie, shared")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | family | objective | per user | per movie | shared | total | grows with | what they are |"
    assert rows[1] == "| cofi | cofi | rating | 30,600 | 150,000 | 0 | 180,600 | users and movies | w_j, b_j: 600 users x (50 + 1) |"
    assert rows[3].startswith("| content | content | rating | 0 | 0 | 85,568 | 85,568 | neither |")
    assert rows[4].startswith("| content_ranking | content | ranking | 0 | 96,000 | 101,984 | 197,984 | movies |")
    assert rows[5] == "| family | per user | per movie | shared | total | grows with |"
    assert rows[6] == "| cofi (cofi + cofi_ranking) | 69,600 | 342,000 | 0 | 411,600 | users and movies |"
    assert rows[7] == "| content (content + content_ranking) | 0 | 96,000 | 187,552 | 283,552 | movies |"
    assert "which is why content scores new users and movies" in section
    page = html_report(EVALUATION, 10, "protocol", {}, ACTIVITY, FAMILIES, PARAMETERS)
    assert "<th>per movie</th>" in page and "<td>180,600</td>" in page and "<th>family</th><th>per user</th>" in page
    assert "Parameters" not in markdown_report(EVALUATION, 10, "protocol", FAMILIES)


# ---- the page's figures -------------------------------------------------------------------------
class Figures(HTMLParser):
    """Each <figure>'s image (alt text, PNG bytes) and caption."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._caption = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            source = str(values["src"])
            assert source.startswith("data:image/png;base64,"), source[:40]
            self.found.append({"alt": values["alt"], "png": base64.b64decode(source.split(",", 1)[1]), "caption": ""})
        self._caption = tag == "figcaption"

    def handle_data(self, data: str) -> None:
        if self._caption:
            self.found[-1]["caption"] += data

    def handle_endtag(self, tag: str) -> None:
        self._caption = False


def pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")


CURVES = {
    "cofi": pd.DataFrame({"iteration": [0, 1, 2], "cost": [3.0, 2.0, 1.5]}),
    "content": pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.2, 0.15, 0.12], "val_loss": [0.21, 0.17, 0.16]}),
    "cofi_ranking": pd.DataFrame({"iteration": [0, 1], "cost": [9.0, 4.0]}),
    "content_ranking": pd.DataFrame({"iteration": [1, 2], "loss": [5.0, 4.5]}),
}
GENRE_NAMES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "War", "Western", "Musical"]


def map_inputs(n_movies: int = 60, dim: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.Series]:
    """(movie ids, vectors, movies table, training ratings per movie): movie 1 was never rated."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_movies + 1, dtype=np.int64)
    genres = [f"{GENRE_NAMES[i % len(GENRE_NAMES)]}|Drama" if i % 7 else "" for i in range(n_movies)]
    movies = pd.DataFrame({MOVIE: ids, TITLE: [f"Movie {i} (2000)" for i in ids], GENRES: genres})
    counts = pd.Series(rng.integers(1, 50, n_movies), index=ids).drop(1)
    return ids, rng.normal(size=(n_movies, dim)), movies, counts


def test_the_page_has_every_models_learning_curve_and_each_familys_embedding_map():
    ids, vectors, movies, counts = map_inputs()
    maps = [movie_map("cofi", "x_i", ids, vectors, movies, counts), movie_map("content", "v_m", ids, vectors[:, ::-1], movies, counts)]
    page = html_report(EVALUATION, 10, "protocol", CURVES, ACTIVITY, FAMILIES, PARAMETERS, [m for m in maps if m])
    figures = {figure["alt"]: figure for figure in Figures(page).found}
    wanted = [f"{name} learning curve" for name in CURVES] + ["cofi movie embedding map", "content movie embedding map"]
    assert set(wanted) <= set(figures)
    for alt in wanted:
        image = pixels(figures[alt]["png"])
        assert image.shape[0] > 200 and image.shape[1] > 400, alt
        assert image[..., :3].var() > 0.01, f"{alt}: blank image"
    assert "weighted cost J per iteration" in figures["cofi_ranking learning curve"]["caption"]
    assert "projected on the two principal axes of the 59 movies with training ratings" in figures["cofi movie embedding map"]["caption"]
    assert page.index("Learning curves: how the models learn") < page.index("Movie embeddings in 2-D")


def test_principal_axes_are_those_of_scikit_learns_pca():
    vectors = np.random.default_rng(1).normal(size=(50, 6)) * [5.0, 3.0, 1.0, 0.5, 0.2, 0.1]
    mean, axes, shares = principal_axes(vectors)
    reference = PCA(n_components=2).fit(vectors)
    np.testing.assert_allclose(mean, reference.mean_)
    np.testing.assert_allclose(np.abs(axes), np.abs(reference.components_), atol=1e-10)
    np.testing.assert_allclose(shares, reference.explained_variance_ratio_)
    assert all(row[np.argmax(np.abs(row))] > 0 for row in axes)  # a fixed sign for each axis
    _, axes, shares = principal_axes(np.array([[1.0], [3.0], [2.0]]))  # one dimension: a flat second axis
    assert axes.tolist() == [[1.0], [0.0]] and shares.tolist() == [1.0, 0.0]


def test_a_map_is_fitted_on_the_rated_movies_only_and_draws_the_most_rated():
    ids, vectors, movies, counts = map_inputs()
    vectors[0] = 1e6  # movie 1, never rated: would dominate the axes if it were fitted on
    found = movie_map("cofi", "x_i", ids, vectors, movies, counts)
    assert found is not None and found.n_fitted == len(ids) - 1
    _, axes, _ = principal_axes(vectors[1:])
    np.testing.assert_allclose(found.coordinates, (vectors[found.movie_ids - 1] - vectors[1:].mean(axis=0)) @ axes.T)
    assert "Movie 1 (2000)" not in found.titles
    drawn_counts = counts.loc[found.movie_ids].to_numpy()
    assert (np.diff(drawn_counts) <= 0).all() and drawn_counts[0] == counts.max()


def test_a_map_draws_at_most_map_movies_and_colours_the_common_first_genres():
    ids, vectors, movies, counts = map_inputs(n_movies=MAP_MOVIES + 50)
    found = movie_map("content", "v_m", ids, vectors, movies, counts)
    assert found is not None and len(found.titles) == MAP_MOVIES
    assert len(set(found.genres) - {OTHER}) == MAP_GENRES
    assert first_genres(pd.Series(["Drama|War", "Drama", "Comedy|Drama", "", "War"]), keep=1).tolist() == [
        "Drama", "Drama", OTHER, OTHER, OTHER,
    ]  # fmt: skip
    assert movie_map("cofi", "x_i", ids[:2], vectors[:2], movies, counts.iloc[:0]) is None


# ---- RMSE axes ----------------------------------------------------------------------------------
def tick_steps(axes) -> set[float]:
    ticks = [t for t in axes.get_yticks() if axes.get_ylim()[0] - 1e-9 <= t <= axes.get_ylim()[1] + 1e-9]
    return {round(b - a, 6) for a, b in itertools.pairwise(ticks)}


@pytest.mark.parametrize(
    ("values", "step"),
    [([0.8143, 0.7996, 0.8462, 0.9894], 0.02), ([0.8641, 0.8607, 0.8824], 0.01), ([0.86, 0.861], 0.01)],
)
def test_the_rmse_chart_starts_near_the_lowest_value_with_ticks_every_one_or_two_hundredths(values, step):
    table = pd.DataFrame({"RMSE": values}, index=[f"m{i}" for i in range(len(values))])
    axes = rmse_chart(table, "RMSE").axes[0]
    low, high = axes.get_ylim()
    assert min(values) - 2 * step - 1e-9 <= low < min(values) and max(values) < high <= max(values) + 2 * step + 1e-9
    assert low > 0.5
    assert tick_steps(axes) == {step}
    assert 0.01 / (high - low) >= 1 / 30  # two models 0.01 apart are visibly apart


def test_error_by_activity_scales_its_rmse_axis_too():
    axes = activity_figure(ACTIVITY).axes[0]
    low, high = axes.get_ylim()
    assert 0.85 <= low < 0.9 and 1.1 < high <= 1.15
    assert tick_steps(axes) == {0.02}
    wide = ACTIVITY.assign(rmse=[0.7, 1.3])
    axes = activity_figure(wide).axes[0]
    assert axes.get_ylim()[0] > 0.6 and tick_steps(axes) == {0.1}
    every = sorted({round(t, 6) for t in [*axes.yaxis.get_minorticklocs(), *axes.get_yticks()] if 0.68 <= t <= 1.32})
    assert {round(b - a, 6) for a, b in itertools.pairwise(every)} == {0.02}  # unlabelled ticks between the labelled ones
