"""The `recsys` command: quick to start, one readable line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import STAGES, app
from pipeline.config import CofiParams, RankingParams
from pipeline.data.schema import MOVIE
from pipeline.errors import data_error
from pipeline.models.cofi import CofiModel
from tests.factories import low_rank_ratings, training_data

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


def test_a_bad_params_file_is_one_error_line_and_exit_code_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("split:\n  test_size: 3\n")
    result = runner.invoke(app, ["split"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: params.yaml: split.test_size: Input should be less than 1 (got 3)"
    ]


def test_data_errors_name_file_column_count_and_examples():
    error = data_error("ratings.csv", "are out of scale", column="rating", count=2, examples=[7.0, -1.0])
    assert str(error) == "ratings.csv: column 'rating': 2 rows are out of scale (e.g. 7.0, -1.0)"
    assert str(data_error("movies.csv", "is empty")) == "movies.csv: is empty"


# ---- recommend: the lists follow params.yaml's ranking, --raw the predicted ratings ------------------
@pytest.fixture(scope="module")
def cofi_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CofiModel]:
    train, movies = low_rank_ratings()
    model = CofiModel.fit(training_data(train, movies), CofiParams(num_features=3, iterations=5))
    models_dir = tmp_path_factory.mktemp("models")
    model.save(models_dir / "cofi")
    return models_dir, model


def listed_movies(output: str) -> list[int]:
    """The movie_id column of a printed recommendation table (header line first)."""
    return [int(line.split()[1]) for line in output.strip().splitlines()[1:]]


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
    assert ranked.stderr.strip() == f"note: no trained cofi_ranking model in {models_dir / 'cofi_ranking'}; listing by the cofi model's predicted ratings"


def test_a_cold_start_option_the_model_does_not_offer_is_one_error_line(cofi_models):
    models_dir, _ = cofi_models
    result = runner.invoke(app, ["recommend", "--genres", "Drama=5", "--raw", "--models-dir", str(models_dir)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "error: --genres: the cofi model cannot describe a new user by genres; use --model content"


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
