"""The evaluation report: reports/report.md (the metrics and parameter tables) and reports/report.html (one offline file).

The HTML page holds the metrics table, each trained model's parameters (per user, per movie,
shared), the learning curves, a 2-D map of each family's movie embeddings, RMSE and nDCG@k
compared, and error by user activity for every rating model; figures are matplotlib PNGs
embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MultipleLocator

from pipeline.data.schema import GENRES, MOVIE, TITLE
from pipeline.evaluation.drift_report import drift_html, drift_markdown
from pipeline.evaluation.metric_table import BY_NAME, METRICS
from pipeline.models.base import ParameterCounts

STEP_COLUMNS = ("step", "iteration", "epoch")
COUNTS = {"n_test_ratings": "test ratings", "cold_n_test_ratings": "cold test ratings", "n_ranked_users": "ranked users"}


def metric_labels(k: int) -> dict[str, str]:
    """evaluation.json key (cold ones flattened to cold_<key>) -> table header: the metrics, then the counts."""
    return {**{metric.name: metric.header(k) for metric in METRICS}, **COUNTS}


def evaluated(evaluation: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The models with metrics (a skipped one's row is {"skipped": reason})."""
    return {name: result for name, result in evaluation.items() if "skipped" not in result}


def skipped_text(evaluation: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence per skipped model, or ""."""
    return " ".join(f"{name} was skipped: {result['skipped']}." for name, result in evaluation.items() if "skipped" in result)


def metrics_table(evaluation: Mapping[str, Mapping[str, Any]], k: int) -> pd.DataFrame:
    """One row per evaluated model (in `evaluation` order), one column per metric; missing values are NaN."""
    rows = {}
    for name, result in evaluated(evaluation).items():
        cold = result.get("cold", {})
        flat = {key: value for key, value in result.items() if key != "cold"}
        flat.update({f"cold_{key}": value for key, value in cold.items()})
        rows[name] = flat
    labels = metric_labels(k)
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(labels))
    table = table.astype("float64").rename(columns=labels)
    table.index.name = "model"
    return table


def _cell(value: float | str, column: str) -> str:
    if isinstance(value, str):
        return value
    if pd.isna(value):
        return "-"
    if column in COUNTS.values():
        return f"{int(value):,}"
    return f"{value:.4f}"


def formatted_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, the model name first."""
    return [[str(name), *(_cell(row[c], c) for c in table.columns)] for name, row in table.iterrows()]


def markdown_table(table: pd.DataFrame) -> str:
    header = [table.index.name or "model", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in formatted_rows(table)]
    return "\n".join(lines) + "\n"


OBJECTIVE_COLUMNS = ("ndcg_at_k", "precision_at_k", "recall_at_k", "coverage", "rmse")
REFERENCES = {"ease": "baseline (item-item, ranking)", "popularity": "baseline (most rated)"}
WHY_RANKING = (
    "Why a model trained on RMSE ranks poorly: it fits the stars of the movies people chose to rate and never "
    "learns which movies a user would choose among all of them, so movies with a few high ratings score as well "
    "as the favourites and dominate the top of its list (the support shrinkage of params.ranking only damps "
    "this). A ranking objective compares each movie the user picked with all the movies the user did not pick, "
    "which is what a top-N list is judged on."
)


def objectives_table(evaluation: Mapping[str, Mapping[str, Any]], k: int, families: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Each family's rating and ranking model side by side on the list metrics (and RMSE), with the
    EASE and popularity rows for reference; only models present in `evaluation`."""
    table = metrics_table(evaluation, k)
    labels = metric_labels(k)
    rows = [(name, f"{family}: {objective} objective") for family, names in families.items() for objective, name in names.items()]
    rows += list(REFERENCES.items())
    present = [(name, what) for name, what in rows if name in table.index]
    out = table.loc[[name for name, _ in present], [labels[c] for c in OBJECTIVE_COLUMNS]]
    out.insert(0, "objective", [what for _, what in present])
    return out


def objectives_markdown(evaluation: Mapping[str, Mapping[str, Any]], k: int, families: Mapping[str, Mapping[str, str]]) -> str:
    """The two objectives section, or "" when no family has both models evaluated."""
    table = objectives_table(evaluation, k, families)
    if not any(all(name in table.index for name in names.values()) for names in families.values()):
        return ""
    return f"## Rating vs ranking objective\n\n{markdown_table(table)}\n{WHY_RANKING}\n"


def markdown_report(
    evaluation: Mapping[str, Mapping[str, Any]],
    k: int,
    protocol: str,
    families: Mapping[str, Mapping[str, str]] | None = None,
    parameters: Mapping[str, ParameterCounts] | None = None,
    *,
    drift: Mapping[str, Any] | None = None,
) -> str:
    """reports/report.md: a title, the protocol in one paragraph, the metrics table, the skipped
    models, the rating vs ranking objective per family, the trained models' parameters, and the data
    drift (metrics/drift.json)."""
    skipped = skipped_text(evaluation)
    parts = [f"# Model evaluation\n\n{protocol}\n\n{markdown_table(metrics_table(evaluation, k))}"]
    if skipped:
        parts.append(f"\n{skipped}\n")
    for section in (objectives_markdown(evaluation, k, families or {}), parameters_markdown(parameters or {}, families or {})):
        if section:
            parts.append(f"\n{section}")
    parts.append(drift_markdown(drift))
    return "".join(parts)


# ---- parameters -----------------------------------------------------------------------------
PARAMETER_COLUMNS = ("family", "objective", "per user", "per movie", "shared", "total", "grows with", "what they are")
FAMILY_COLUMNS = ("family", "per user", "per movie", "shared", "total", "grows with")
WHAT_PARAMETERS_MEAN = (
    "Collaborative filtering learns a vector for every training user (w_j, b_j) and every movie (x_i), "
    "so it grows with the number of users and movies, and a user or movie without training ratings has "
    "no learned numbers of its own: a new user gets w = 0, b = 0 (the movie means) or has w and b fitted "
    "from their ratings with X held fixed. (cofi also stores each movie's training mean, which is computed, "
    "not learned, and not counted.) The content models learn only the two towers' weights, shared by every "
    "user and movie: their size does not depend on how many users and movies there are, and any user or "
    "movie with features (rating history or genre tastes; year and genres) gets v_u or v_m, which is why "
    "content scores new users and movies. content_ranking's movie-id embedding (content_ranking.id_dim) is "
    "the exception: a row per catalogue movie, which grows with the catalogue; a movie without training "
    "positives uses the shared unknown-movie row."
)


def _count(value: int) -> str:
    return f"{value:,}"


def _grows_with(counts: ParameterCounts) -> str:
    grows = [what for what, n in (("users", counts.per_user), ("movies", counts.per_movie)) if n]
    return " and ".join(grows) or "neither"


def parameters_table(parameters: Mapping[str, ParameterCounts], families: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """One row per model of `parameters` (family order first, then any other), its counts as text."""
    placed = {name: (family, objective) for family, names in families.items() for objective, name in names.items()}
    order = [name for name in placed if name in parameters] + [name for name in parameters if name not in placed]
    rows = {}
    for name in order:
        counts, (family, objective) = parameters[name], placed.get(name, ("-", "-"))
        numbers = (counts.per_user, counts.per_movie, counts.shared, counts.total)
        rows[name] = [family, objective, *map(_count, numbers), _grows_with(counts), counts.parts]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(PARAMETER_COLUMNS))
    table.index.name = "model"
    return table


def family_parameters_table(parameters: Mapping[str, ParameterCounts], families: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Per family, its models' counts added up, and what they grow with."""
    rows = {}
    for family, names in families.items():
        present = [parameters[name] for name in names.values() if name in parameters]
        if not present:
            continue
        summed = ParameterCounts(
            per_user=sum(c.per_user for c in present),
            per_movie=sum(c.per_movie for c in present),
            shared=sum(c.shared for c in present),
            parts="",
        )
        numbers = (summed.per_user, summed.per_movie, summed.shared, summed.total)
        label = f"{family} ({' + '.join(name for name in names.values() if name in parameters)})"
        rows[label] = [*map(_count, numbers), _grows_with(summed)]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(FAMILY_COLUMNS[1:]))
    table.index.name = "family"
    return table


def parameters_markdown(parameters: Mapping[str, ParameterCounts], families: Mapping[str, Mapping[str, str]]) -> str:
    """The parameters section, or "" without a trained model that counts its parameters."""
    if not parameters:
        return ""
    tables = [markdown_table(parameters_table(parameters, families)), markdown_table(family_parameters_table(parameters, families))]
    return "## Parameters: per user, per movie, shared\n\n" + "\n".join(tables) + f"\n{WHAT_PARAMETERS_MEAN}\n"


# ---- figures --------------------------------------------------------------------------------
def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float, bottom: float = 0.55, right: float = 0.2) -> tuple[Figure, Axes]:
    """A figure with one axes inside fixed margins (inches; left room for the y labels, top for the
    title): drawn once, where a layout engine or a tight bounding box costs a second pass."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(left=0.8 / width, right=1 - right / width, bottom=bottom / height, top=1 - 0.35 / height)
    return figure, figure.subplots()


def _model_ticks(axes: Axes, names: pd.Index) -> None:
    """One x tick per model, its name slanted so that long names do not run into each other."""
    axes.set_xticks(range(len(names)), names.astype(str), rotation=30, ha="right", rotation_mode="anchor")


RMSE_STEP = 0.01  # the smallest RMSE difference worth reading off a chart


def rmse_axis(axes: Axes, values: Sequence[float] | np.ndarray) -> None:
    """A y axis for RMSE values: from just below the lowest to just above the highest (not from 0),
    ticks every 0.01 (a span up to 0.1) or 0.02 (up to 0.3); a wider span gets labelled ticks every
    0.05 or 0.1 and unlabelled ones every 0.02, with grid lines on both."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return
    low, high = float(finite.min()), float(finite.max())
    span = high - low
    step = RMSE_STEP if span <= 0.1 else 2 * RMSE_STEP
    major = step if span <= 0.3 else 0.05 if span <= 0.6 else 0.1
    lower = max(0.0, (np.floor(low / step + 1e-9) - 1) * step)
    upper = (np.ceil(high / step - 1e-9) + 1) * step
    axes.set_ylim(lower, upper)
    axes.yaxis.set_major_locator(MultipleLocator(major))
    if major != step:
        axes.yaxis.set_minor_locator(MultipleLocator(step))
    axes.grid(axis="y", which="both", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def rmse_chart(table: pd.DataFrame, column: str) -> Figure | None:
    """Models' RMSE as points on an axis scaled to their range (`rmse_axis`); None when no model has one."""
    values = table[column].dropna()
    if values.empty:
        return None
    figure, axes = _figure(6, 3.2, bottom=0.85)
    axes.plot(range(len(values)), values.to_numpy(), "o", color="#4c72b0", markersize=8)
    _model_ticks(axes, values.index)
    axes.set_xlim(-0.5, len(values) - 0.5)
    axes.set_ylabel(column)
    axes.set_title(f"{column} (lower is better)")
    for x, value in enumerate(values.to_numpy()):
        axes.annotate(f"{value:.3f}", (x, value), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    rmse_axis(axes, values.to_numpy())
    return figure


def bar_chart(table: pd.DataFrame, column: str, lower_is_better: bool) -> Figure | None:
    """Models compared on one metric (models without a value are left out); None when none has one."""
    values = table[column].dropna()
    if values.empty:
        return None
    figure, axes = _figure(6, 3.2, bottom=0.85)
    axes.bar(range(len(values)), values.to_numpy(), color="#4c72b0")
    _model_ticks(axes, values.index)
    axes.set_ylim(0, values.max() * 1.12 if values.max() > 0 else 1)  # room for the value labels
    axes.set_ylabel(column)
    axes.set_title(f"{column} ({'lower' if lower_is_better else 'higher'} is better)")
    for x, value in enumerate(values.to_numpy()):
        axes.annotate(f"{value:.3f}", (x, value), ha="center", va="bottom", fontsize=8)
    return figure


# What each training stage's curve measures, and how the model learns (the figure's caption).
CURVE_CAPTIONS = {
    "cofi": "cofi: cost J per iteration (gradient descent with Adam over the training ratings; or Spark ALS)",
    "content": "content: loss per epoch, the mean squared error on ratings scaled to [-1, 1], and val_loss on "
    "the held-out slice (Adam on mini-batches of ratings)",
    "cofi_ranking": "cofi_ranking: weighted cost J per iteration (alternating least squares: the users' rows, then the movies')",
    "content_ranking": "content_ranking: in-batch softmax loss per epoch (Adam on mini-batches of positive ratings)",
}
CURVE_LABELS = {"cofi": "cost J", "content": "MSE (scaled ratings)", "cofi_ranking": "weighted cost J", "content_ranking": "softmax loss"}


def curve_figure(name: str, curve: pd.DataFrame) -> Figure | None:
    """Every numeric column of a learning-curve CSV against its step/iteration/epoch column (or row number)."""
    steps_column = next((c for c in curve.columns if str(c).lower() in STEP_COLUMNS), None)
    steps = curve[steps_column].to_numpy() if steps_column else np.arange(len(curve))
    series = [c for c in curve.select_dtypes("number").columns if c != steps_column]
    if not series or curve.empty:
        return None
    figure, axes = _figure(6, 3)
    for column in series:
        axes.plot(steps, curve[column].to_numpy(), label=str(column))
    axes.set_xlabel(steps_column or "step")
    axes.set_ylabel(CURVE_LABELS.get(name, "value"))
    axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))  # a cost of 325,000 reads 3.25 x 1e5: fits the margin
    axes.set_title(f"{name}: learning curve")
    axes.legend()
    return figure


# ---- movie embeddings in 2-D ------------------------------------------------------------------
MAP_MOVIES = 400  # the most-rated training movies drawn on a map
MAP_TITLES = 8  # of them, the most rated are labelled with their title
MAP_GENRES = 8  # colours for the most common first genres among the drawn movies; the rest are "other"
OTHER = "other"
GENRE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
OTHER_COLOUR = "#c7c7c7"


def principal_axes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, the first two principal axes as rows, their shares of the variance) of the rows of
    `vectors`; an axis's sign is set so that its largest component is positive, and vectors of one
    dimension get a flat second axis. The axes are the top eigenvectors of the (dims x dims)
    scatter matrix: the same as an SVD of the centred rows, without the (movies x dims) factor."""
    data = np.asarray(vectors, np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    variance, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending
    n = min(2, len(variance))
    axes, shares = np.zeros((2, data.shape[1])), np.zeros(2)
    axes[:n] = eigenvectors[:, ::-1][:, :n].T
    axes *= np.where(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)] < 0, -1.0, 1.0)[:, None]
    variance = np.clip(variance[::-1], 0.0, None)
    if variance.sum() > 0:
        shares[:n] = variance[:n] / variance.sum()
    return mean, axes, shares


@dataclass(frozen=True)
class MovieMap:
    """The movies drawn on one model's 2-D map, most rated first: their coordinates on the first two
    principal axes of the model's vectors for the movies with training ratings."""

    model: str
    symbol: str  # what the vectors are called: x_i, v_m
    movie_ids: np.ndarray
    coordinates: np.ndarray  # (movies x 2)
    shares: np.ndarray  # the two axes' shares of the variance
    titles: np.ndarray
    genres: np.ndarray  # each movie's first genre, or OTHER
    n_fitted: int  # movies the axes were fitted on


def first_genres(genres: pd.Series, keep: int = MAP_GENRES) -> np.ndarray:
    """Each movie's first listed genre, the `keep` most common of them kept and the others (and no genre) OTHER."""
    first = genres.fillna("").astype(str).str.split("|").str[0].replace("", OTHER)
    common = first[first != OTHER].value_counts(sort=False)
    kept = sorted(common.index, key=lambda genre: (-common[genre], genre))[:keep]
    return np.where(first.isin(kept), first, OTHER)


def movie_map(
    model: str, symbol: str, movie_ids: np.ndarray, vectors: np.ndarray, movies: pd.DataFrame, train_counts: pd.Series
) -> MovieMap | None:
    """The map of one model's movie vectors (rows in the order of `movie_ids`): principal axes fitted
    on the movies with training ratings (`train_counts`: ratings per movie_id), the MAP_MOVIES most
    rated of them drawn. None when fewer than two movies have a vector and a training rating."""
    counts = train_counts.reindex(movie_ids).fillna(0).to_numpy()
    rated = np.flatnonzero(counts > 0)
    if len(rated) < 2:
        return None
    mean, axes, shares = principal_axes(vectors[rated])
    drawn = rated[np.lexsort((movie_ids[rated], -counts[rated]))][:MAP_MOVIES]
    table = movies.set_index(MOVIE).reindex(movie_ids[drawn])
    return MovieMap(
        model=model,
        symbol=symbol,
        movie_ids=movie_ids[drawn],
        coordinates=(np.asarray(vectors[drawn], np.float64) - mean) @ axes.T,
        shares=shares,
        titles=table[TITLE].fillna("").astype(str).to_numpy(),
        genres=first_genres(table[GENRES]),
        n_fitted=len(rated),
    )


def map_figure(movie_map: MovieMap) -> Figure:
    """A scatter of the map's movies coloured by first genre, the MAP_TITLES most rated labelled."""
    figure, axes = _figure(8, 5, right=1.6)  # the genre legend sits in the right margin
    genres = [g for g in dict.fromkeys(movie_map.genres) if g != OTHER]
    colours = dict(zip(sorted(genres, key=lambda g: (-np.sum(movie_map.genres == g), g)), GENRE_COLOURS, strict=False))
    for genre, colour in [*colours.items(), (OTHER, OTHER_COLOUR)]:
        rows = movie_map.genres == genre
        if rows.any():
            x, y = movie_map.coordinates[rows].T
            axes.scatter(x, y, s=14, color=colour, label=f"{genre} ({rows.sum()})", alpha=0.85, linewidths=0)
    named = movie_map.coordinates[:MAP_TITLES]
    axes.scatter(named[:, 0], named[:, 1], s=30, facecolors="none", edgecolors="black", linewidths=0.7)
    for (x, y), title in zip(named, movie_map.titles[:MAP_TITLES], strict=False):
        axes.annotate(title if len(title) <= 30 else title[:29] + "…", (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    first, second = movie_map.shares
    axes.set_xlabel(f"principal axis 1 ({first:.0%} of the variance)")
    axes.set_ylabel(f"principal axis 2 ({second:.0%} of the variance)")
    axes.set_title(f"{movie_map.model}: movie vectors {movie_map.symbol}, {len(movie_map.titles)} most-rated movies")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="first genre", title_fontsize=8, frameon=False)
    return figure


def map_caption(movie_map: MovieMap) -> str:
    return (
        f"{movie_map.model}: each movie's {movie_map.symbol} projected on the two principal axes of the "
        f"{movie_map.n_fitted:,} movies with training ratings; the {len(movie_map.titles)} most-rated are drawn, "
        f"coloured by their first listed genre, the {min(MAP_TITLES, len(movie_map.titles))} most-rated named"
    )


def activity_figure(activity: pd.DataFrame) -> Figure | None:
    """RMSE by bin of the user's training ratings, one line per model."""
    if activity.empty:
        return None
    figure, axes = _figure(7, 3.5, bottom=0.85)  # two-line tick labels and the axis label
    order = list(dict.fromkeys(activity["activity"]))
    for model, rows in activity.groupby("model", sort=False):
        positions = [order.index(a) for a in rows["activity"]]
        axes.plot(positions, rows["rmse"].to_numpy(), marker="o", label=str(model))
    counts = activity.drop_duplicates("activity").set_index("activity")["n_test_ratings"]
    axes.set_xticks(range(len(order)), [f"{label}\n(n={counts[label]:,})" for label in order])
    axes.set_xlabel("user's training ratings")
    axes.set_ylabel("RMSE")
    axes.set_title("Error by user activity")
    axes.legend()
    rmse_axis(axes, activity["rmse"].to_numpy())
    return figure


# ---- the page -----------------------------------------------------------------------------
def html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [table.index.name or "model", *table.columns])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>" for cells in formatted_rows(table))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(title: str, figure: Figure | None, caption: str | None = None) -> str:
    if figure is None:
        return ""
    return (
        f'<figure><img alt="{html.escape(title)}" src="{png_data_uri(figure)}">'
        f"<figcaption>{html.escape(caption or title)}</figcaption></figure>"
    )


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:14px;margin:0.5em 0 1em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:1em;max-width:720px}"
    "figcaption{font-size:13px;color:#555}"
)


def parameters_html(parameters: Mapping[str, ParameterCounts], families: Mapping[str, Mapping[str, str]]) -> list[str]:
    if not parameters:
        return []
    return [
        "<h2>Parameters: per user, per movie, shared</h2>",
        html_table(parameters_table(parameters, families)),
        html_table(family_parameters_table(parameters, families)),
        f"<p>{html.escape(WHAT_PARAMETERS_MEAN)}</p>",
    ]


def html_report(
    evaluation: Mapping[str, Mapping[str, Any]],
    k: int,
    protocol: str,
    curves: Mapping[str, pd.DataFrame],
    activity: pd.DataFrame,
    families: Mapping[str, Mapping[str, str]] | None = None,
    parameters: Mapping[str, ParameterCounts] | None = None,
    maps: Sequence[MovieMap] = (),
    *,
    drift: Mapping[str, Any] | None = None,
) -> str:
    """reports/report.html: one self-contained page (no external files, scripts or fonts)."""
    table = metrics_table(evaluation, k)
    labels = metric_labels(k)
    skipped = skipped_text(evaluation)
    sections = [
        "<h2>Metrics</h2>",
        html_table(table),
        f"<p>{html.escape(skipped)}</p>" if skipped else "",
    ]
    if objectives_markdown(evaluation, k, families or {}):
        objectives = objectives_table(evaluation, k, families or {})
        sections += ["<h2>Rating vs ranking objective</h2>", html_table(objectives), f"<p>{html.escape(WHY_RANKING)}</p>"]
    sections += parameters_html(parameters or {}, families or {})
    sections += [
        "<h2>Models compared</h2>",
        _figure_html("RMSE on the test split", rmse_chart(table, labels["rmse"])),
        _figure_html(labels["ndcg_at_k"], bar_chart(table, labels["ndcg_at_k"], BY_NAME["ndcg_at_k"].lower_is_better)),
    ]
    curve_parts = [
        _figure_html(f"{name} learning curve", curve_figure(name, curve), CURVE_CAPTIONS.get(name)) for name, curve in curves.items()
    ]
    if any(curve_parts):
        sections += ["<h2>Learning curves: how the models learn</h2>", *curve_parts]
    if maps:
        sections += [
            "<h2>Movie embeddings in 2-D</h2>",
            *(_figure_html(f"{m.model} movie embedding map", map_figure(m), map_caption(m)) for m in maps),
        ]
    sections += ["<h2>Error by user activity</h2>", _figure_html("RMSE by user activity", activity_figure(activity))]
    sections += drift_html(drift)
    body = "\n".join(part for part in sections if part)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Model evaluation</title>'
        f"<style>{STYLE}</style></head><body><h1>Model evaluation</h1><p>{html.escape(protocol)}</p>\n{body}\n</body></html>\n"
    )
