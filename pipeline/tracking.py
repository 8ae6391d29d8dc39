"""MLflow tracking for the stages: tracking URI, runs and tags, input datasets, batched metrics,
pyfunc models (the Model Registry is driven by pipeline/registry.py and pipeline/stages/promote.py).

Models know nothing of MLflow: a trained model object with `predict(DataFrame[user_id, movie_id])`,
`save(dir)` and a classmethod `load(dir)` is wrapped here as an MLflow pyfunc.

Names, so that a run reads the same whatever its model (README, "MLflow runs"): a run is
`<family>-<objective>@<data source>` (`cofi-ranking@ml-latest-small`); metrics are `curve_*` (one
value per iteration or epoch), `test_*` (the evaluate stage, on the test split) and `train_*` (one
value each from metrics/train_<name>.json, and train_seconds from records/train_<name>.json), which
the UI's alphabetical lists keep in that order.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID

from pipeline.config import ServeParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import RecsysError

METRIC_BATCH = 1000  # MLflow accepts at most 1000 metrics (or 100 params) per log_batch call
PARAM_BATCH = 100
CURVE, TEST, TRAIN = "curve_", "test_", "train_"  # metric name prefixes (module doc)
CONTEXTS = {"train": "training", "test": "testing"}  # split part -> the input's mlflow.data.context
DIGEST_LENGTH = 16  # MLflow stores at most 36 characters of a dataset digest
PACKAGE_DIR = Path(__file__).resolve().parent


def repository_root(start: Path | None = None) -> Path:
    """The project root, also from inside a `dvc exp run --temp` copy under <root>/.dvc/tmp/exps/."""
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    if ".dvc" in parts:
        return Path(*parts[: parts.index(".dvc")])
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() or (folder / ".dvc").is_dir():
            return folder
    return here


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else sqlite at the absolute path <repo>/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root() / 'mlflow.db'}"


def shown_uri(uri: str) -> str:
    """The URI without any user:password@ part, fit for an error message."""
    parts = urlsplit(uri)
    if not parts.username and not parts.password:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds when an http(s) tracking server does not answer (MLflow's own
    client would retry for minutes). Any HTTP answer, even 401/404, counts as reachable."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(shown_uri(uri).rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RecsysError(
            f"MLflow tracking server {shown_uri(uri)} does not answer ({reason}); start it, or point "
            "MLFLOW_TRACKING_URI at one that does (unset it to use the local sqlite store)"
        ) from None


def configure(experiment: str) -> str:
    """Point MLflow at the project's store and experiment; returns the URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    location = local_artifact_location(uri)
    if location and mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


def local_artifact_location(uri: str) -> str | None:
    """For a sqlite store, artifacts go to an absolute mlruns/ beside the database file.

    MLflow's default is ./mlruns relative to the working directory, which scatters artifacts
    (and loses them under `dvc exp run --temp`). A server decides for itself: None.
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / "mlruns").resolve().as_uri()


def run_name(family: str, objective: str, source: str) -> str:
    """('cofi', 'ranking', 'ml-latest-small') -> 'cofi-ranking@ml-latest-small'."""
    return f"{family}-{objective}@{source}"


def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in the git repository holding `folder` (default: the working
    directory, which DVC makes the repository root or its `dvc exp run --temp` copy), or None."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=folder or Path.cwd(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def run_tags(family: str, dataset: Mapping[str, Any], objective: str | None = None, model: str | None = None) -> dict[str, str]:
    """Tags every run carries: model family (objective, pipeline model name), data source, dataset
    fingerprint, the git commit and the DVC experiment ($DVC_EXP_NAME, set by `dvc exp run`)."""
    tags = {
        "model_family": family,
        "data_source": str(dataset.get("source", "unknown")),
        "dataset_fingerprint": str(dataset.get("fingerprint", "unknown")),
    }
    if objective:
        tags["objective"] = objective
    if model:
        tags["model"] = model
    commit = git_commit()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        tags["dvc_experiment"] = exp_name
    return tags


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'cofi': {'k': 1}} -> {'cofi.k': '1'}; lists become their string form."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@contextmanager
def start_run(
    name: str,
    experiment: str,
    family: str,
    dataset: Mapping[str, Any],
    objective: str | None = None,
    model: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[str]:
    """Start a run named `name` in `experiment` with the standard tags (nested under
    `parent_run_id` when given); yields the run id."""
    configure(experiment)
    tags = run_tags(family, dataset, objective, model)
    if parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    with mlflow.start_run(run_name=name, tags=tags) as run:
        yield run.info.run_id


def log_params(params: Mapping[str, Any], run_id: str | None = None) -> None:
    """Log (nested) params into `run_id` or the active run; a key already logged must keep its value."""
    run_id = run_id or _active_run_id()
    flat = [Param(key, value) for key, value in flatten(params).items()]
    client = MlflowClient()
    for start in range(0, len(flat), PARAM_BATCH):
        client.log_batch(run_id, params=flat[start : start + PARAM_BATCH], synchronous=True)


def run_params(run_id: str) -> dict[str, str]:
    return dict(MlflowClient().get_run(run_id).data.params)


def changed_params(run_id: str, params: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{key: (logged, new)} for the flattened `params` the run already holds with another value
    (MLflow refuses to change a logged param)."""
    logged = run_params(run_id)
    return {key: (logged[key], value) for key, value in flatten(params).items() if key in logged and logged[key] != value}


def identity_params(family: str, objective: str, dataset: Mapping[str, Any], split_strategy: str) -> dict[str, str]:
    """The params every run logs under the same names to say what it is and what data it saw."""
    source = str(dataset.get("source", "unknown"))
    return {"family": family, "objective": objective, "data_source": source, "split_strategy": split_strategy}


def train_metrics(values: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, float]:
    """The numbers of a training result (metrics/train_<name>.json, and the seconds of
    records/train_<name>.json) as MLflow metrics named train_<key> (a key that
    already starts with train_ keeps its name); booleans, text and `skip` are left out."""
    return {
        key if key.startswith(TRAIN) else f"{TRAIN}{key}": float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in skip
    }


class DataSourceName(DatasetSource):
    """Where an input dataset comes from: the pipeline's data source (data.source), e.g. ml-latest-small."""

    def __init__(self, data_source: str) -> None:
        self.data_source = data_source

    @staticmethod
    def _get_source_type() -> str:
        return "recsys"

    def load(self) -> Any:
        raise NotImplementedError("a recsys input dataset is a record of metadata; read data/split/ for the ratings")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> DataSourceName:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"data_source": self.data_source}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> DataSourceName:
        return cls(str(source_dict["data_source"]))


class SplitDataset(MetaDataset):
    """A split part logged by its metadata alone (MLflow stores no ratings): name, source, digest,
    schema, and a profile of its sizes."""

    def __init__(self, source: DatasetSource, name: str, digest: str, schema: Schema, profile: Mapping[str, Any]) -> None:
        self._profile = dict(profile)
        super().__init__(source, name=name, digest=digest, schema=schema)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def ratings_digest(ratings: pd.DataFrame) -> str:
    """DIGEST_LENGTH hex digits of sha256 over the column names and row hashes: the same ratings give the same digest."""
    digest = hashlib.sha256("\x1f".join(map(str, ratings.columns)).encode())
    digest.update(pd.util.hash_pandas_object(ratings, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:DIGEST_LENGTH]


def split_name(source: str, strategy: str, part: str) -> str:
    """'ml-latest-small/random/train'."""
    return f"{source}/{strategy}/{part}"


def log_split(part: str, ratings: pd.DataFrame, dataset: Mapping[str, Any], strategy: str, run_id: str | None = None) -> None:
    """Record a split part (`train` or `test`) as an input of `run_id` or the active run, so that the
    UI's Datasets column shows it: name <source>/<strategy>/<part>, source the data source, digest
    ratings_digest(ratings), the columns, and as profile the sizes and the dataset fingerprint."""
    run_id = run_id or _active_run_id()
    source = str(dataset.get("source", "unknown"))
    types = {"int64": DataType.long, "float64": DataType.double}
    schema = Schema([ColSpec(types.get(str(dtype), DataType.string), str(column)) for column, dtype in ratings.dtypes.items()])
    profile = {
        "num_rows": len(ratings),
        "num_users": int(ratings[USER].nunique()) if USER in ratings else None,
        "num_movies": int(ratings[MOVIE].nunique()) if MOVIE in ratings else None,
        "mean_rating": round(float(ratings[RATING].mean()), 4) if RATING in ratings and len(ratings) else None,
        "dataset_fingerprint": str(dataset.get("fingerprint", "unknown")),
    }
    logged = SplitDataset(DataSourceName(source), split_name(source, strategy, part), ratings_digest(ratings), schema, profile)
    entry = DatasetInput(logged._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXTS.get(part, part))])
    MlflowClient().log_inputs(run_id, datasets=[entry])


def log_metrics(metrics: Mapping[str, float], run_id: str | None = None, step: int | None = None) -> None:
    """Log scalar metrics (one batched call) into `run_id` or the active run."""
    run_id = run_id or _active_run_id()
    history = {key: ([float(value)], [step or 0]) for key, value in metrics.items()}
    _log_batch(run_id, history)


def log_metric_history(histories: Mapping[str, Sequence[float]], steps: Sequence[int] | None = None, run_id: str | None = None) -> None:
    """Log whole curves (e.g. cost per iteration) with step=, in batches of METRIC_BATCH."""
    run_id = run_id or _active_run_id()
    data = {}
    for key, values in histories.items():
        values = [float(v) for v in values]
        data[key] = (values, list(steps) if steps is not None else list(range(len(values))))
    _log_batch(run_id, data)


def log_curves(histories: Mapping[str, Sequence[float]], steps: Sequence[int] | None = None, run_id: str | None = None) -> None:
    """log_metric_history with each name prefixed curve_ ('train_cost' -> 'curve_train_cost')."""
    log_metric_history({f"{CURVE}{key}": values for key, values in histories.items()}, steps, run_id)


def run_exists(run_id: str) -> bool:
    """True when `run_id` is a run of the current tracking store (a DVC run-cache restore may leave a stale id)."""
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


def search_runs(experiment: str, max_results: int | None = None, filter_string: str = "") -> pd.DataFrame:
    """The experiment's runs matching `filter_string` (MLflow's search syntax), newest first
    (mlflow.search_runs columns); empty when the experiment does not exist."""
    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    newest_first = ["attributes.start_time DESC"]
    query: dict[str, Any] = {"max_results": max_results} if max_results else {}
    return mlflow.search_runs(
        experiment_names=[experiment], filter_string=filter_string, order_by=newest_first, output_format="pandas", **query
    )


def _active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: pass run_id or use tracking.start_run")
    return run.info.run_id


def _log_batch(run_id: str, data: Mapping[str, tuple[list[float], list[int]]]) -> None:
    timestamp = int(pd.Timestamp.now().timestamp() * 1000)
    metrics = [
        Metric(key, value, timestamp, int(step)) for key, (values, steps) in data.items() for value, step in zip(values, steps, strict=True)
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), METRIC_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRIC_BATCH], synchronous=True)


def log_figure(figure: Any, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_artifact(path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


class RecsysPyfunc(PythonModel):
    """MLflow pyfunc over a project model, answering what pipeline/serving.py describes: a top-k list
    per `user_id` (params k), or with `movie_id` in every row the model's predict() of the pairs
    (stars for a rating model, ranking scores for a ranking model such as cofi_ranking).

    The model's own files (npz/JSON/.keras) are the artifact `model_dir`; `model_config["loader"]`
    names its class as "module:Class", whose `load(dir)` rebuilds it, `name` the pipeline's name for
    it (cofi_ranking); the other keys are params.yaml's `serve` limits. A bad request raises MLflow's INVALID_PARAMETER_VALUE, which the
    scoring server answers with HTTP 400 and the message (any other exception would be answered
    400 with a generic message only).
    """

    def load_context(self, context: Any) -> None:
        from pipeline.models.loading import class_at
        from pipeline.serving import Answers

        config = dict(context.model_config)
        loader, name = config.pop("loader"), config.pop("name")
        self.model = class_at(loader).load(context.artifacts["model_dir"])
        self.answers = Answers(self.model, name, ServeParams.model_validate(config))
        one_blas_thread()  # before the lists below: each is one user's small product
        self.answers.precompute()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        from mlflow.exceptions import MlflowException

        one_blas_thread()
        try:
            return self.answers.answer(model_input, params)
        except RecsysError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None


_BLAS_LIMIT = threading.Lock()
_blas_limited = False


def one_blas_thread() -> None:
    """Limit BLAS to one thread in this process, once, before the first prediction.

    A served request is one user's (1 x k)(k x movies) product, and the scoring server answers
    requests in parallel threads: BLAS's own threads only add waiting to such small products (on a
    busy 2-core machine one user's scores took 16x longer with OpenBLAS's two threads than with one,
    and the server spent 20 ms of CPU per top-10 request instead of 4-6: benchmarks/README.md, "Serving").
    """
    global _blas_limited
    with _BLAS_LIMIT:
        if not _blas_limited:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")
            _blas_limited = True


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ["numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "mlflow"]
    extra = ["tensorflow", "keras"]
    reqs = []
    for name in names + extra:
        try:
            reqs.append(f"{name}=={version(name)}")
        except Exception:
            continue
    return reqs


def signature(serve: ServeParams) -> Any:
    """No input schema (serving.py checks the request itself: a typed one would let MLflow truncate a
    user_id of 1.5 to 1 and drop the ratings column) and the param k, so that the server passes it on."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    return ModelSignature(inputs=None, outputs=None, params=ParamSchema([ParamSpec("k", "long", serve.k)]))


def log_model(model: Any, name: str, serve: ServeParams | None = None) -> str:
    """Save `model` with its own save(), log it as a pyfunc named `name` with the `serve` limits
    (params.yaml's defaults when None); returns the model URI."""
    serve = serve or ServeParams()
    loader = f"{type(model).__module__}:{type(model).__qualname__}"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        model.save(model_dir)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=RecsysPyfunc(),
            artifacts={"model_dir": str(model_dir)},
            model_config={"loader": loader, "name": name, **serve.model_dump()},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(serve),
            input_example=(pd.DataFrame({USER: model.seen.user_ids[:1]}), {"k": serve.k}),  # a request, shown with the model
            pip_requirements=_pip_requirements(),
        )
    return info.model_uri


def load_model(uri: str) -> Any:
    """Load a logged model as an MLflow pyfunc."""
    return mlflow.pyfunc.load_model(uri)
