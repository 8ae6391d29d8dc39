"""The served model: top-k lists per user (known, unknown, described by ratings), pair scores, and
bad requests refused with MLflow's 400 and a readable message. First through the logged pyfunc in
this process (pipeline/serving.py behind tracking.RecsysPyfunc), then through `mlflow models serve`."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import registry, tracking
from pipeline.config import ServeParams
from pipeline.data.schema import MOVIE, TITLE, USER
from pipeline.models.baselines import BiasModel
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.serving import Answers
from tests.factories import low_rank_ratings, tiny_cofi, tiny_cofi_ranking, training_data
from tests.isolation import REPO
from tests.servers import BIN, HOST, environment, free_port, log_lines_seen, serving

SERVE = ServeParams(k=3, max_k=8, max_rows=4)  # small limits, so that a too-long request stays short
UNKNOWN = 999


def invoke(url: str, rows: pd.DataFrame) -> list[float]:
    """POST the README's request: JSON {"dataframe_split": {"columns": [...], "data": [[...], ...]}}."""
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of a POST, errors included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve_command(model_uri: str, port: int, *options: str) -> list[str]:
    where = ["--host", HOST, "--port", str(port)]
    return [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", *where, *options]


# the README's way to serve a top-N champion: one uvicorn process per core, no access-log line per request
README_ENV, README_OPTIONS = {"UVICORN_ACCESS_LOG": "false"}, ("--workers", "2")


# ---- a logged cofi_ranking champion ----------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    model: CofiRankingModel
    movies: pd.DataFrame
    store: str  # the tracking URI holding the registered champion
    local: Path  # the logged model's files
    pyfunc: Any  # mlflow.pyfunc.load_model(local)

    def known_user(self) -> int:
        """The training user with the most training ratings (so the seen movies matter)."""
        counts = np.diff(self.model.seen.indptr)
        return int(self.model.seen.user_ids[np.argmax(counts)])


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    root = tmp_path_factory.mktemp("serving")
    store = f"sqlite:///{root / 'mlflow.db'}"
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    model = tiny_cofi_ranking(ratings, movies)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        with tracking.start_run("cofi_ranking", "serving-test", "cofi_ranking", {"fingerprint": "f", "source": "synthetic"}) as run_id:
            uri = tracking.log_model(model, "cofi_ranking", SERVE)
        name = registry.registered_name("cofi_ranking", "synthetic")
        version = registry.register(MlflowClient(), name, uri, run_id, {})
        MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version.version)
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "model")))
    return Logged(model, movies, store, local, mlflow.pyfunc.load_model(str(local)))


def refusal(pyfunc: Any, rows: pd.DataFrame, params: dict[str, Any] | None = None) -> str:
    """The message of the MlflowException a bad request raises, checked to be answered 400."""
    with pytest.raises(MlflowException) as info:
        pyfunc.predict(rows, params=params)
    assert info.value.get_http_status_code() == 400
    return info.value.message


def listed(answer: dict[str, Any]) -> list[int]:
    return [entry[MOVIE] for entry in answer["recommendations"]]


# ---- in process: the logged pyfunc --------------------------------------------------------------


def test_a_known_user_gets_the_models_recommend_without_the_movies_seen_in_training(logged: Logged):
    user = logged.known_user()
    [answer] = logged.pyfunc.predict(pd.DataFrame({USER: [user]}), params={"k": 5})
    expected = logged.model.recommend(user, n=5)
    assert answer[USER] == user and answer["cold_start"] is False
    assert listed(answer) == expected[MOVIE].tolist()
    assert [e["score"] for e in answer["recommendations"]] == np.round(expected["score"], 4).tolist()
    seen = set(logged.model.catalogue.movie_ids[logged.model.seen.of(user)].tolist())
    assert len(seen) >= 5 and not seen & set(listed(answer))
    # titles come from the logged model's own files
    titles = logged.movies.set_index(MOVIE)[TITLE]
    assert [e[TITLE] for e in answer["recommendations"]] == titles[listed(answer)].tolist()


def test_without_params_the_list_has_the_logged_default_length(logged: Logged):
    [answer] = logged.pyfunc.predict(pd.DataFrame({USER: [logged.known_user()]}))
    assert len(answer["recommendations"]) == SERVE.k


def test_an_unknown_user_gets_the_cold_start_list_most_rated_first_where_the_scores_tie(logged: Logged):
    model = logged.model
    assert not model.score_block(np.array([UNKNOWN]))[0].any()  # no movie biases: an unknown user scores 0 everywhere
    known, unknown = logged.pyfunc.predict(pd.DataFrame({USER: [logged.known_user(), UNKNOWN]}), params={"k": 4})
    assert known["cold_start"] is False and unknown["cold_start"] is True and unknown[USER] == UNKNOWN
    support = np.bincount(model.seen.indices, minlength=len(model.catalogue))
    by_support = model.catalogue.movie_ids[np.lexsort((model.catalogue.movie_ids, -support))]
    assert listed(unknown) == by_support[:4].tolist()
    assert np.diff(support[model.catalogue.index(np.array(listed(unknown)))]).max() <= 0


def test_a_new_users_ratings_give_the_models_recommend_for_ratings(logged: Logged):
    ratings = {"12": 5, "13": 4.5}  # JSON object keys are text
    [answer] = logged.pyfunc.predict(pd.DataFrame({USER: [UNKNOWN], "ratings": [ratings]}), params={"k": 4})
    expected = logged.model.recommend_for_ratings({12: 5.0, 13: 4.5}, n=4)
    assert answer["cold_start"] is False
    assert listed(answer) == expected[MOVIE].tolist() and not {12, 13} & set(listed(answer))


def test_ids_are_whole_numbers_of_any_int64_size_also_when_json_sends_them_as_floats(logged: Logged):
    big = 2**60 + 1  # a source's own integer id can be that large
    answers = logged.pyfunc.predict(pd.DataFrame({USER: [big]}))
    assert answers[0][USER] == big and answers[0]["cold_start"] is True
    user = logged.known_user()
    mixed = logged.pyfunc.predict(pd.DataFrame({USER: [float(user), 1.0e6]}))  # [{"user_id": 12}, {"user_id": 1e6}]
    assert [a[USER] for a in mixed] == [user, 1_000_000] and [a["cold_start"] for a in mixed] == [False, True]


def test_pairs_are_still_scored_by_the_models_predict(logged: Logged):
    pairs = pd.DataFrame({USER: [logged.known_user(), UNKNOWN, 10], MOVIE: [10, 11, 99999]})
    np.testing.assert_array_equal(logged.pyfunc.predict(pairs), logged.model.predict(pairs))


@pytest.mark.parametrize(
    ("rows", "params", "message"),
    [
        ({USER: [1.5]}, None, "request: column 'user_id': 1 row is not an id (a whole number, 0 or more), e.g. 1.5"),
        ({USER: [10, -1, -2]}, None, "request: column 'user_id': 2 rows are not ids (a whole number, 0 or more), e.g. -1, -2"),
        ({USER: ["7", True, None]}, None, "3 rows are not ids (a whole number, 0 or more), e.g. '7', True, None"),
        ({USER: [2.0**60]}, None, "e.g. 1.152921504606847e+18"),  # beyond 2^53 a float is no exact id
        ({USER: [10]}, {"k": 0}, "request: params k must be an integer from 1 to 8 (serve.max_k); got 0"),
        ({USER: [10]}, {"k": 9}, "params k must be an integer from 1 to 8"),
        ({USER: [10]}, {"k": 1.5}, "Can not safely convert"),  # MLflow's own check of the signature's param
        ({USER: [10] * 5}, None, "request: 5 rows; at most 4 per request (serve.max_rows)"),
        ({MOVIE: [10]}, None, "request: missing column 'user_id'; every row names a user"),
        ({USER: [10], "user": [1]}, None, "request: unknown column(s) 'user'; the columns are user_id, movie_id, ratings, genres"),
        ({USER: [10, 11], MOVIE: [10, math.nan]}, None, "column 'movie_id': 1 row is not an id"),
        ({USER: [10], "ratings": [{"1.5": 4}]}, None, "column 'ratings': row 0: a key is not a movie id"),
        ({USER: [10], "ratings": [{"12": "five"}]}, None, "column 'ratings': row 0: a rating is not a number, e.g. 'five'"),
        ({USER: [10], "ratings": [[12, 5]]}, None, "column 'ratings': row 0 is not a non-empty {movie_id: stars} mapping"),
        ({USER: [10], "ratings": [{"77777": 4}]}, None, "are for movies not in the catalogue"),  # the model's own check
        ({USER: [10], "ratings": [{"12": 9}]}, None, "outside the rating range 0.5..5"),
        ({USER: [10], "genres": [{"Horror": 5}]}, None, "genres: the cofi_ranking model cannot describe a new user by genres"),
        ({USER: [10], MOVIE: [10], "ratings": [{"12": 4}]}, None, "'ratings' describes a user for a top-k list"),
        ({USER: [10], "ratings": [{"12": 4}], "genres": [{"Drama": 5}]}, None, "row 0 gives both ratings and genres"),
    ],
)
def test_bad_requests_are_answered_400_naming_the_problem(logged: Logged, rows, params, message):
    assert message in refusal(logged.pyfunc, pd.DataFrame(rows), params)


def test_the_limits_can_be_set_when_the_model_is_loaded(logged: Logged):
    # as `MLFLOW_PYFUNC_INFERENCE_CONFIG='{"max_rows": 2}' mlflow models serve ...` does
    tighter = mlflow.pyfunc.load_model(str(logged.local), model_config={"max_rows": 2})
    assert "at most 2 per request" in refusal(tighter, pd.DataFrame({USER: [10, 11, 12]}))


def test_predicting_leaves_blas_one_thread_for_the_small_products_of_a_request(logged: Logged):
    from threadpoolctl import threadpool_info

    logged.pyfunc.predict(pd.DataFrame({USER: [logged.known_user()]}))
    assert {library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"} == {1}


def test_a_rating_models_list_is_its_recommend_in_stars_to_two_decimals():
    model = BiasModel.fit(training_data(*low_rank_ratings(n_users=12, n_movies=15)))
    user = int(model.seen.user_ids[0])
    [answer] = Answers(model, "bias", SERVE).answer(pd.DataFrame({USER: [user]}), {"k": 4})
    expected = model.recommend(user, n=4)
    assert listed(answer) == expected[MOVIE].tolist()
    assert [e["score"] for e in answer["recommendations"]] == np.round(expected["score"], 2).tolist()


@pytest.mark.parametrize("precompute_users", [0, 11, 12])  # the fixture's model has 12 training users
def test_precomputed_lists_answer_exactly_what_scoring_per_request_does(logged: Logged, precompute_users: int):
    model = logged.model
    answers = Answers(model, "cofi_ranking", ServeParams(k=3, max_k=8, max_rows=20, precompute_users=precompute_users))
    answers.precompute()
    users = model.seen.user_ids.tolist()
    assert len(users) == 12 and (len(answers._known) == 12) == (precompute_users >= 12)
    for k in range(1, 9):
        got = answers.answer(pd.DataFrame({USER: users}), {"k": k})
        for user, answer in zip(users, got, strict=True):
            assert answer["recommendations"] == answers.records(model.top_list(user, n=k)), (user, k)


def test_the_logged_pyfunc_computes_the_known_users_lists_when_it_loads(logged: Logged):
    answers = logged.pyfunc.unwrap_python_model().answers
    assert sorted(answers._known) == logged.model.seen.user_ids.tolist()
    assert [len(positions) for positions, _ in answers._known.values()] == [SERVE.max_k] * 12


# ---- through `mlflow models serve` ------------------------------------------------------------------


@pytest.mark.slow
def test_the_cofi_champion_serves_the_ratings_its_predict_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the sqlite store keeps artifacts in ./mlruns
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    model = tiny_cofi(ratings, movies)
    with tracking.start_run("cofi", "serving-test", "cofi", {"fingerprint": "f", "source": "synthetic"}) as run_id:
        uri = tracking.log_model(model, "cofi")
    name = registry.registered_name("cofi", "synthetic")
    version = registry.register(MlflowClient(), name, uri, run_id, {})
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version.version)

    port = free_port()
    command = serve_command(registry.model_alias_uri("cofi", "synthetic"), port)
    # known pairs, an unknown user and an unknown movie (fallbacks, never an error)
    rows = pd.concat([ratings[[USER, MOVIE]].head(4), pd.DataFrame({USER: [999, 1], MOVIE: [1, 99999]})], ignore_index=True)
    with serving(command, f"http://{HOST}:{port}/ping", tmp_path / "serve.log", timeout=120):
        answer = invoke(f"http://{HOST}:{port}/invocations", rows)
    np.testing.assert_allclose(answer, model.predict(rows), rtol=0, atol=1e-12)
    assert len(answer) == 6 and all(0.5 <= value <= 5.0 for value in answer)


@pytest.mark.slow
def test_the_ranking_champion_serves_top_k_lists_and_refuses_bad_requests_with_400(
    logged: Logged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged.store)
    port = free_port()
    url = f"http://{HOST}:{port}/invocations"
    user = logged.known_user()
    command = serve_command(registry.model_alias_uri("cofi_ranking", "synthetic"), port, *README_OPTIONS)
    log = tmp_path / "serve.log"
    with serving(command, f"http://{HOST}:{port}/ping", log, env={**environment(), **README_ENV}, timeout=120):
        status, body = post(url, {"dataframe_records": [{USER: user}, {USER: UNKNOWN}], "params": {"k": 5}})
        refused = {
            "1.5": post(url, {"dataframe_records": [{USER: 1.5}]}),
            "-1": post(url, {"dataframe_records": [{USER: -1}]}),
            "k=0": post(url, {"dataframe_records": [{USER: user}], "params": {"k": 0}}),
            "rows": post(url, {"dataframe_records": [{USER: user}] * 5}),
        }
        served = log_lines_seen(log, "Started server process", 2)
    assert status == 200
    known, unknown = body["predictions"]
    expected = logged.model.recommend(user, n=5)
    assert known == {
        USER: user,
        "cold_start": False,
        "recommendations": [
            {MOVIE: m, TITLE: t, "score": round(s, 4)} for m, t, s in zip(expected[MOVIE], expected[TITLE], expected["score"], strict=True)
        ],
    }
    assert not set(logged.model.catalogue.movie_ids[logged.model.seen.of(user)].tolist()) & set(listed(known))
    assert unknown["cold_start"] is True and len(unknown["recommendations"]) == 5
    messages = {
        "1.5": "column 'user_id': 1 row is not an id (a whole number, 0 or more), e.g. 1.5",
        "-1": "column 'user_id': 1 row is not an id (a whole number, 0 or more), e.g. -1",
        "k=0": "params k must be an integer from 1 to 8 (serve.max_k); got 0",
        "rows": "5 rows; at most 4 per request (serve.max_rows)",
    }
    for case, (code, answer) in refused.items():
        assert (code, answer["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), case
        assert messages[case] in answer["message"], case
    assert served.count("Started server process") == 2, served[-2000:]
    assert "POST /invocations" not in served, served[-2000:]


def test_the_readme_serves_the_ranking_champion_as_the_serving_tests_do():
    readme = (REPO / "README.md").read_text()
    options = " ".join(README_OPTIONS)
    env = " ".join(f"{k}={v}" for k, v in README_ENV.items())
    assert f'{env} mlflow models serve -m "models:/recsys-cofi_ranking-ml-latest-small@champion" --env-manager local' in readme
    assert f"--env-manager local --host 127.0.0.1 --port 5001 {options}" in readme


def test_uvicorn_picks_its_c_http_parser_and_event_loop():
    from uvicorn.loops.auto import auto_loop_factory
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    assert AutoHTTPProtocol.__name__ == "HttpToolsProtocol"
    loop = auto_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
