"""Stage `recommend` on tiny data: the model it chooses, k unseen movies per training user, the same
bytes on a rerun, nothing written on failure, and no TensorFlow unless the chosen model needs it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import batch, records
from pipeline.batch import TOP_K_COLUMNS, best_ranking_model
from pipeline.config import CofiRankingParams, ContentRankingParams, parse_params
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError, ModelError
from pipeline.features import load_features
from pipeline.io import write_json
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.models.content_retrieval import ContentRankingModel
from pipeline.models.loading import load_trained, ranking_models
from pipeline.paths import Layout
from pipeline.stages.inputs import dataset_identity
from pipeline.stages.recommend import run
from tests.factories import DATASET, content_layout, training_data
from tests.isolation import BIN

K = 5
PARAMS = parse_params({"recommend": {"k": K, "batch_size": 7}})  # 7 does not divide the 30 users: a short last block
FILE = "metrics/evaluation.json"


def evaluation(layout: Layout, **ndcg: float) -> None:
    """metrics/evaluation.json with these nDCG@k values, e.g. cofi_ranking=0.3, and its (empty) record."""
    write_json(layout.evaluation, {name: {"ndcg_at_k": value, "precision_at_k": 0.1} for name, value in ndcg.items()})
    write_json(layout.record_of(layout.evaluation), {})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace (30 users, 80 movies) with both ranking models trained, as the training stages leave it."""
    root = tmp_path_factory.mktemp("trained")
    layout = content_layout(root)
    data = training_data(pd.read_parquet(layout.train), pd.read_parquet(layout.raw_movies), features=load_features(layout.features))
    CofiRankingModel.fit(data, CofiRankingParams(num_features=4, iterations=3)).save(layout.model_dir("cofi_ranking"))
    content = ContentRankingParams(user_layers=[8], item_layers=[8], embedding_dim=4, id_dim=4, epochs=1, batch_size=64, history_length=16)
    ContentRankingModel.fit(data, content).save(layout.model_dir("content_ranking"))
    for name in ranking_models():
        write_json(layout.training_record(name), {"mlflow_run_id": "run", **dataset_identity(DATASET)})
    return root


@pytest.fixture
def layout(trained: Path, tmp_path: Path) -> Layout:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    layout = Layout(tmp_path)
    evaluation(layout, cofi_ranking=0.3, content_ranking=0.2)
    return layout


def read_top_k(layout: Layout) -> pd.DataFrame:
    return pd.read_parquet(layout.top_k)


def meta(layout: Layout) -> dict:
    return json.loads(layout.top_k_meta.read_text())


# ---- which model ----------------------------------------------------------------------------------


def test_the_ranking_model_with_the_best_metric_is_chosen_and_the_reason_written(layout):
    run(PARAMS, layout)
    written = meta(layout)
    assert (written["model"], written["metric"], written["value"]) == ("cofi_ranking", "ndcg_at_k", 0.3)
    assert written["candidates"] == {"cofi_ranking": 0.3, "content_ranking": 0.2} and written["left_out"] == {}
    assert written["reason"] == (
        f"cofi_ranking has the highest ndcg_at_k (promote.ranking_metric) in {layout.evaluation} among the ranking models: "
        "cofi_ranking 0.3000, content_ranking 0.2000"
    )
    assert (written["model_dir"], written["k"], written["users"]) == ("models/cofi_ranking", K, 30)
    assert written["ids"] == {USER: "source", MOVIE: "source"} and written["dataset_fingerprint"] == "f00d"


def test_a_model_that_evaluate_skipped_is_left_out_with_the_reason_from_its_record(layout):
    results = {"cofi_ranking": {"ndcg_at_k": 0.1}, "content_ranking": {"skipped": "too large"}}
    records.write(layout.evaluation, layout.record_of(layout.evaluation), results)
    run(PARAMS, layout)
    written = meta(layout)
    assert (written["model"], written["left_out"]) == ("cofi_ranking", {"content_ranking": "skipped by evaluate (too large)"})


def test_content_ranking_writes_the_lists_when_it_scores_better(layout):
    evaluation(layout, cofi_ranking=0.1, content_ranking=0.2)
    run(PARAMS, layout)
    assert meta(layout)["model"] == "content_ranking"
    model = load_trained("content_ranking", layout.models)
    top_k = read_top_k(layout)
    for user in model.seen.user_ids[:3]:
        expected = model.recommend(int(user), n=K)
        listed = top_k[top_k[USER] == user]
        assert listed[MOVIE].tolist() == expected[MOVIE].tolist()
        np.testing.assert_allclose(listed["score"], expected["score"], rtol=1e-6)


def test_promote_ranking_metric_decides():
    evaluated = {"cofi_ranking": {"ndcg_at_k": 0.3, "precision_at_k": 0.1}, "content_ranking": {"ndcg_at_k": 0.2, "precision_at_k": 0.2}}
    assert best_ranking_model(evaluated, "ndcg_at_k", ranking_models(), FILE).model == "cofi_ranking"
    assert best_ranking_model(evaluated, "precision_at_k", ranking_models(), FILE).model == "content_ranking"


def test_a_tie_goes_to_the_first_ranking_model_and_says_so():
    choice = best_ranking_model(
        {"cofi_ranking": {"ndcg_at_k": 0.2}, "content_ranking": {"ndcg_at_k": 0.2}}, "ndcg_at_k", ranking_models(), FILE
    )
    assert choice.model == "cofi_ranking" and choice.reason().endswith("; a tie goes to the first listed")


def test_a_candidate_without_a_usable_value_is_left_out_with_the_reason():
    evaluated = {"cofi_ranking": {"skipped": "too large"}, "content_ranking": {"ndcg_at_k": 0.1}}
    choice = best_ranking_model(evaluated, "ndcg_at_k", ranking_models(), FILE)
    assert (choice.model, dict(choice.left_out)) == ("content_ranking", {"cofi_ranking": "skipped by evaluate (too large)"})
    assert choice.reason().endswith("; cofi_ranking left out: skipped by evaluate (too large)")
    with pytest.raises(ModelError) as info:
        best_ranking_model({"cofi_ranking": {"ndcg_at_k": float("nan")}}, "ndcg_at_k", ranking_models(), FILE)
    assert str(info.value) == (
        f"{FILE}: no ranking model has a usable ndcg_at_k (cofi_ranking: ndcg_at_k is nan, not a finite number; "
        "content_ranking: no entry (its evaluation did not run)); run the evaluate stage (dvc repro evaluate)"
    )


# ---- the lists ---------------------------------------------------------------------------------------


def test_every_training_user_gets_k_unseen_movies_ranked_1_to_k_best_first(layout):
    run(PARAMS, layout)
    top_k, train = read_top_k(layout), pd.read_parquet(layout.train)
    assert list(top_k.columns) == list(TOP_K_COLUMNS) and top_k.dtypes.astype(str).tolist() == ["int64", "int64", "int64", "float64"]
    assert sorted(top_k[USER].unique()) == sorted(train[USER].unique()) and top_k[USER].is_monotonic_increasing
    assert (top_k.groupby(USER).size() == K).all()
    assert (top_k.groupby(USER)["rank"].apply(list) == [list(range(1, K + 1))] * 30).all()
    seen = top_k.merge(train[[USER, MOVIE]], on=[USER, MOVIE])
    assert seen.empty
    assert (top_k.groupby(USER)["score"].diff().dropna() <= 0).all()
    model = load_trained("cofi_ranking", layout.models)
    for user in model.seen.user_ids:  # the same lists as `recsys recommend --user`
        expected = model.recommend(int(user), n=K)
        listed = top_k[top_k[USER] == user]
        assert listed[MOVIE].tolist() == expected[MOVIE].tolist()
        np.testing.assert_allclose(listed["score"], expected["score"], rtol=1e-12)
    assert meta(layout)["rows"] == 30 * K


def test_a_user_with_fewer_than_k_unseen_movies_gets_all_of_them(layout):
    k = 70  # the catalogue has 80 movies; every user rated more than 10 of them
    run(parse_params({"recommend": {"k": k}}), layout)
    top_k, train = read_top_k(layout), pd.read_parquet(layout.train)
    unseen = len(pd.read_parquet(layout.raw_movies)) - train.groupby(USER)[MOVIE].nunique()
    assert (unseen < k).any()
    assert top_k.groupby(USER).size().to_dict() == np.minimum(unseen, k).to_dict()
    assert top_k.merge(train[[USER, MOVIE]], on=[USER, MOVIE]).empty


def test_a_rerun_writes_the_same_bytes_and_the_block_size_changes_no_list(layout):
    run(PARAMS, layout)
    first = layout.top_k.read_bytes(), layout.top_k_meta.read_bytes()
    run(PARAMS, layout)
    assert (layout.top_k.read_bytes(), layout.top_k_meta.read_bytes()) == first
    assert pq.ParquetFile(layout.top_k).num_row_groups == 5  # one per block of 7 users
    by_seven = read_top_k(layout)
    run(parse_params({"recommend": {"k": K, "batch_size": 1000}}), layout)
    whole = read_top_k(layout)
    pd.testing.assert_frame_equal(whole.drop(columns="score"), by_seven.drop(columns="score"))
    np.testing.assert_allclose(whole["score"], by_seven["score"], rtol=1e-12)


# ---- failures: nothing partial -----------------------------------------------------------------------


def test_a_failure_while_writing_leaves_the_previous_lists_and_no_temporary_file(layout, monkeypatch):
    run(PARAMS, layout)
    before = layout.top_k.read_bytes(), layout.top_k_meta.read_bytes()
    blocks = []

    def failing_block(*args, **kwargs):
        blocks.append(1)
        if len(blocks) == 3:
            raise MemoryError("third block")
        return real(*args, **kwargs)

    real = batch.top_k_block
    monkeypatch.setattr(batch, "top_k_block", failing_block)
    with pytest.raises(MemoryError):
        run(parse_params({"recommend": {"k": 3, "batch_size": 7}}), layout)
    assert (layout.top_k.read_bytes(), layout.top_k_meta.read_bytes()) == before
    assert sorted(p.name for p in layout.recommendations.iterdir()) == ["meta.json", "top_k.parquet"]


def test_missing_evaluation_names_the_evaluate_stage_and_writes_nothing(layout):
    layout.evaluation.unlink()
    with pytest.raises(DataError, match=r"evaluation\.json: not found; run the evaluate stage first$"):
        run(PARAMS, layout)
    assert not layout.recommendations.exists()


def test_a_model_trained_on_other_data_is_refused(layout):
    write_json(layout.training_record("cofi_ranking"), {"mlflow_run_id": "run", "dataset_fingerprint": "0ther", "data_source": "synthetic"})
    with pytest.raises(ModelError, match="records/train_cofi_ranking.json: the cofi_ranking model was trained on another dataset"):
        run(PARAMS, layout)
    layout.training_record("cofi_ranking").unlink()
    with pytest.raises(ModelError, match=r"train_cofi_ranking\.json: not found; train the cofi_ranking model first"):
        run(PARAMS, layout)
    assert not layout.recommendations.exists()


def test_a_missing_model_folder_is_named(layout):
    shutil.rmtree(layout.model_dir("cofi_ranking"))
    with pytest.raises(ModelError, match=r"models/cofi_ranking: no trained cofi_ranking model here"):
        run(PARAMS, layout)
    assert not layout.recommendations.exists()


# ---- the stage command: no TensorFlow or MLflow for either model --------------------------------------------


HEAVY_CHECK = """
import sys
from pipeline import cli
sys.argv = ["recsys", "recommend-batch"]
try:
    cli.main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("heavy:" + ",".join(m for m in ("tensorflow", "keras", "mlflow", "great_expectations", "sklearn") if m in sys.modules))
"""


def stage_process(layout: Layout) -> tuple[list[str], list[str]]:
    """Run `recsys recommend-batch` at the layout's root in a fresh process: (its lines, the heavy libraries it imported)."""
    (layout.root / "params.yaml").write_text(f"recommend:\n  k: {K}\n")
    done = subprocess.run([str(BIN / "python"), "-c", HEAVY_CHECK], cwd=layout.root, capture_output=True, text=True, check=True)
    *lines, heavy = done.stdout.strip().splitlines()
    return lines, [name for name in heavy.removeprefix("heavy:").split(",") if name]


def test_the_stage_command_imports_neither_tensorflow_nor_mlflow_for_either_ranking_model(layout):
    lines, heavy = stage_process(layout)
    assert heavy == []
    assert lines == [f"recommend: top {K} for 30 users ({30 * K} rows) in data/recommendations/top_k.parquet; {meta(layout)['reason']}"]
    assert meta(layout)["model"] == "cofi_ranking" and read_top_k(layout).groupby(USER).size().eq(K).all()
    evaluation(layout, cofi_ranking=0.1, content_ranking=0.2)
    _, heavy = stage_process(layout)
    # the towers' vectors were saved at training; only its feature scalers come from scikit-learn
    assert meta(layout)["model"] == "content_ranking" and heavy == ["sklearn"]
