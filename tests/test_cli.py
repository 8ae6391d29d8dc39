"""The `recsys` command: quick to start, one readable line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import STAGES, app
from pipeline.config import ContentParams, RankingParams, SyntheticParams
from pipeline.data.schema import MOVIE
from pipeline.data.synthetic import generate
from pipeline.errors import data_error
from pipeline.features import build_features, save_features
from pipeline.models.cofi import CofiModel
from pipeline.models.content import ContentModel
from tests.factories import low_rank_ratings, tiny_cofi, training_data

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


def test_starting_the_cli_imports_no_heavy_library():
    """TensorFlow, MLflow and Great Expectations take seconds to import: only commands that need them do."""
    code = (
        "import sys, pipeline.cli\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'great_expectations', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_command_collects_garbage_rarely_and_skips_the_collection_at_exit():
    """Every stage is a short process: frequent collections over the imported libraries, and the full one
    at interpreter exit, cost seconds; main() raises the first threshold and freezes what is left."""
    code = (
        "import gc, sys\n"
        "from pipeline import cli\n"
        "before = gc.get_threshold()\n"
        "sys.argv = ['recsys', '--help']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(before[0], *gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[-2]
    default_first, *after, frozen = out.split()
    assert int(default_first) == 700
    assert [int(value) for value in after] == [10_000, 10, 10]
    assert frozen == "True"


def test_a_bad_params_file_is_one_error_line_and_exit_code_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("split:\n  test_size: 3\n")
    result = runner.invoke(app, ["split"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: params.yaml: split.test_size: Input should be less than 1 (got 3)"]


def test_data_errors_name_file_column_count_and_examples():
    error = data_error("ratings.csv", "are out of scale", column="rating", count=2, examples=[7.0, -1.0])
    assert str(error) == "ratings.csv: column 'rating': 2 rows are out of scale (e.g. 7.0, -1.0)"
    assert str(data_error("movies.csv", "is empty")) == "movies.csv: is empty"


# ---- recommend: the lists follow params.yaml's ranking, --raw the predicted ratings ------------------
@pytest.fixture(scope="module")
def cofi_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CofiModel]:
    model = tiny_cofi(*low_rank_ratings())
    models_dir = tmp_path_factory.mktemp("models")
    model.save(models_dir / "cofi")
    return models_dir, model


def listed_movies(output: str) -> list[int]:
    """The movie_id column of a printed recommendation table (the rows between its header and the legend)."""
    lines = output.splitlines()
    rows = lines[next(i for i, line in enumerate(lines) if line.startswith("#  movie_id")) + 1 :]
    return [int(line.split()[1]) for line in rows[: rows.index("")]]


def test_recommend_ranks_with_the_ranking_params_and_raw_by_predicted_rating(cofi_models, tmp_path: Path):
    models_dir, model = cofi_models
    params = tmp_path / "params.yaml"
    params.write_text("ranking:\n  shrinkage: 20\n")
    user = int(model.seen.user_ids[0])
    command = ["recommend", "--user", str(user), "-n", "5", "--models-dir", str(models_dir), "--params", str(params)]
    ranked, raw = runner.invoke(app, command), runner.invoke(app, [*command, "--raw"])
    assert ranked.exit_code == 0 and raw.exit_code == 0, ranked.output + raw.output
    expected = model.with_ranking(RankingParams(shrinkage=20)).recommend(user, n=5)[MOVIE].tolist()
    assert listed_movies(ranked.stdout) == expected
    assert listed_movies(raw.stdout) == model.recommend(user, n=5)[MOVIE].tolist() != expected
    # no cofi_ranking model in models_dir: the rating model, said in one line on stderr
    assert (
        ranked.stderr.strip()
        == f"note: no trained cofi_ranking model in {models_dir / 'cofi_ranking'}; listing by the cofi model's predicted ratings"
    )


def test_a_cold_start_option_the_model_does_not_offer_is_one_error_line(cofi_models):
    models_dir, _ = cofi_models
    result = runner.invoke(app, ["recommend", "--genres", "Drama=5", "--raw", "--models-dir", str(models_dir)])
    assert result.exit_code == 1
    assert (
        result.output.strip().splitlines()[-1]
        == "error: --genres: the cofi model cannot describe a new user by genres; use --model content"
    )


# ---- recommend / similar: readable answers -------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Tiny cofi and content models saved as the pipeline saves them, with data/raw and data/features."""
    root = tmp_path_factory.mktemp("trained")
    ratings, movies = generate(SyntheticParams(n_users=30, n_movies=80, n_ratings=900, min_user_ratings=20, seed=5))
    train = ratings.sample(frac=0.8, random_state=0).reset_index(drop=True)
    (root / "data" / "raw").mkdir(parents=True)
    movies.to_parquet(root / "data" / "raw" / "movies.parquet", index=False)
    features = build_features(train, movies, 0.0)
    save_features(features, root / "data" / "features")
    tiny_cofi(train, movies).save(root / "models" / "cofi")
    content = ContentParams(
        user_layers=[4], item_layers=[4], embedding_dim=2, epochs=2, batch_size=256, validation_fraction=0.0, patience=None
    )
    ContentModel.fit(training_data(train, movies, features=features), content).save(root / "models" / "content")
    return root, train, movies


def invoke(root: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--models-dir", str(root / "models"), "--data-dir", str(root / "data")])
    assert result.exit_code == 0, result.output
    return result.stdout


def train_stats(train, movie_ids) -> tuple[list[int], list[float]]:
    grouped = train.groupby("movie_id")["rating"].agg(["size", "mean"]).reindex(movie_ids)
    return grouped["size"].astype(int).tolist(), grouped["mean"].tolist()


def test_recommend_shows_year_genres_and_training_ratings_beside_each_title(trained):
    root, train, movies = trained
    user = int(train["user_id"].iloc[0])
    lines = invoke(root, "recommend", "--user", str(user), "-n", "3", "--params", str(root / "none.yaml")).splitlines()
    seen = int((train["user_id"] == user).sum())
    assert lines[0] == f"Top 3 for user {user} (cofi model; {seen} movies rated in training):"
    assert lines[1].split()[:6] == ["#", "movie_id", "title", "year", "genres", "ratings"]
    assert lines[1].endswith("mean rating  ranking score")
    first = int(lines[2].split()[1])
    movie = movies.set_index("movie_id").loc[first]
    counts, means = train_stats(train, [first])
    assert f"  {movie['year']}  " in lines[2] and movie["genres"].replace("|", ", ") in lines[2]
    assert lines[2].split()[-3:-1] == [str(counts[0]), f"{means[0]:.2f}"]
    assert any(line.startswith("ranking score: predicted stars adjusted by params.yaml `ranking` (shrinkage 500") for line in lines)


def test_recommend_json_has_the_details_and_names_the_score(trained):
    root, train, movies = trained
    user = int(train["user_id"].iloc[0])
    document = json.loads(invoke(root, "recommend", "--user", str(user), "-n", "4", "--raw", "--json"))
    assert document["query"] == {"model": "cofi", "user": user}
    assert document["score"]["key"] == "predicted_stars"
    ids = [r["movie_id"] for r in document["results"]]
    counts, means = train_stats(train, ids)
    assert [r["n_ratings"] for r in document["results"]] == counts
    assert [r["mean_rating"] for r in document["results"]] == pytest.approx(means, abs=1e-4)
    expected_genres = [g.split("|") if g else [] for g in movies.set_index("movie_id").loc[ids, "genres"]]
    assert [r["genres"] for r in document["results"]] == expected_genres
    stars = CofiModel.load(root / "models" / "cofi").predict(pd.DataFrame({"user_id": user, "movie_id": ids}))
    assert [r["predicted_stars"] for r in document["results"]] == pytest.approx(stars.tolist(), abs=1e-6)


def test_recommend_for_ratings_echoes_the_titles_it_resolved(trained):
    root, _, movies = trained
    title = str(movies["title"].iloc[0])
    typed = title.rsplit(" (", 1)[0].upper()  # case and year left out
    lines = invoke(root, "recommend", "--ratings", f"{typed}=4.5", "-n", "2").splitlines()
    movie_id = int(movies["movie_id"].iloc[0])
    assert lines[:3] == ["Ratings read:", f"  {title} [id {movie_id}] = 4.5", "Top 2 for these ratings (cofi model):"]
    document = json.loads(invoke(root, "recommend", "--ratings", f"{typed}=4.5", "-n", "2", "--json"))
    assert document["query"]["ratings"] == [{"typed": typed, "movie_id": movie_id, "title": title, "rating": 4.5}]


def test_similar_echoes_the_movie_and_explains_the_distance(trained):
    root, _, movies = trained
    title = str(movies["title"].iloc[1])
    movie_id = int(movies["movie_id"].iloc[1])
    lines = invoke(root, "similar", title.lower(), "-n", "2").splitlines()
    assert lines[0] == f"Closest to {title} [id {movie_id}] in the content model's embedding space:"
    assert lines[1].split()[-1] == "distance"
    assert "distance: squared distance between the two movies' embeddings (smaller is closer)" in lines
    document = json.loads(invoke(root, "similar", title.lower(), "-n", "2", "--json"))
    assert document["query"] == {"model": "content", "typed": title.lower(), "movie_id": movie_id, "title": title}
    assert len(document["results"]) == 2 and "year" in document["results"][0]


def test_recommend_for_genres_echoes_the_tastes(trained):
    root, _, _ = trained
    lines = invoke(root, "recommend", "--model", "content", "--genres", "horror=5, Drama=4", "-n", "2").splitlines()
    assert lines[0] == "Top 2 for genre tastes horror=5, Drama=4 (content model):"
    assert lines[1].split()[:3] == ["#", "movie_id", "title"]


@pytest.fixture(scope="module")
def both_objectives(cofi_models, tmp_path_factory: pytest.TempPathFactory):
    """A models folder with cofi and cofi_ranking trained on the same data."""
    from pipeline.config import CofiRankingParams
    from pipeline.models.cofi_ranking import CofiRankingModel

    _, rating = cofi_models
    train, movies = low_rank_ratings()
    ranking = CofiRankingModel.fit(training_data(train, movies), CofiRankingParams(num_features=3, iterations=3, positive_threshold=None))
    models_dir = tmp_path_factory.mktemp("both")
    rating.save(models_dir / "cofi")
    ranking.save(models_dir / "cofi_ranking")
    return models_dir, rating, ranking


def test_recommend_lists_come_from_the_ranking_model_by_default_and_rating_on_request(both_objectives, tmp_path: Path):
    models_dir, rating, ranking = both_objectives
    params = tmp_path / "params.yaml"
    params.write_text("ranking:\n  shrinkage: 20\n")
    user = int(ranking.user_ids[0])
    command = ["recommend", "--user", str(user), "-n", "5", "--models-dir", str(models_dir), "--params", str(params)]
    default, by_rating = runner.invoke(app, command), runner.invoke(app, [*command, "--objective", "rating"])
    assert default.exit_code == 0 and by_rating.exit_code == 0, default.output + by_rating.output
    assert default.stderr == ""
    assert listed_movies(default.stdout) == ranking.recommend(user, n=5)[MOVIE].tolist()  # raw scores, no shrinkage
    assert listed_movies(by_rating.stdout) == rating.with_ranking(RankingParams(shrinkage=20)).recommend(user, n=5)[MOVIE].tolist()


def test_a_new_user_with_ratings_is_folded_into_the_ranking_model(both_objectives):
    models_dir, _, ranking = both_objectives
    picks = {int(m): 5.0 for m in ranking.catalogue.movie_ids[:3]}
    text = ",".join(f"{movie}={value:g}" for movie, value in picks.items())
    result = runner.invoke(app, ["recommend", "--ratings", text, "-n", "4", "--models-dir", str(models_dir)])
    assert result.exit_code == 0, result.output
    assert listed_movies(result.stdout) == ranking.recommend_for_ratings(picks, n=4)[MOVIE].tolist()


def test_an_unknown_objective_is_one_error_line(cofi_models):
    models_dir, _ = cofi_models
    result = runner.invoke(app, ["recommend", "--user", "10", "--objective", "stars", "--models-dir", str(models_dir)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "error: unknown objective 'stars'; choose one of rating, ranking"
