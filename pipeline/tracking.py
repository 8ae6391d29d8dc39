"""MLflow tracking for the stages: tracking URI, runs and tags, batched metrics, pyfunc models (the
Model Registry is driven by pipeline/registry.py and pipeline/stages/promote.py).

Models know nothing of MLflow: a trained model object with `predict(DataFrame[user_id, movie_id])`,
`save(dir)` and a classmethod `load(dir)` is wrapped here as an MLflow pyfunc.
"""

from __future__ import annotations

import os
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
from mlflow.entities import Metric
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from pipeline.config import ServeParams
from pipeline.data.schema import USER
from pipeline.errors import RecsysError

METRIC_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call
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


def run_tags(family: str, dataset: Mapping[str, Any]) -> dict[str, str]:
    """Tags every run carries: model family, data source, dataset fingerprint, DVC experiment."""
    tags = {
        "model_family": family,
        "data_source": str(dataset.get("source", "unknown")),
        "dataset_fingerprint": str(dataset.get("fingerprint", "unknown")),
    }
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
def start_run(name: str, experiment: str, family: str, dataset: Mapping[str, Any]) -> Iterator[str]:
    """Start a run named `name` in `experiment` with the standard tags; yields the run id."""
    configure(experiment)
    with mlflow.start_run(run_name=name, tags=run_tags(family, dataset)) as run:
        yield run.info.run_id


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params(flatten(params))


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


def run_exists(run_id: str) -> bool:
    """True when `run_id` is a run of the current tracking store (a DVC run-cache restore may leave a stale id)."""
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


def search_runs(experiment: str, max_results: int | None = None) -> pd.DataFrame:
    """The experiment's runs, newest first (mlflow.search_runs columns); empty when it does not exist."""
    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    newest_first = ["attributes.start_time DESC"]
    if max_results:
        return mlflow.search_runs(experiment_names=[experiment], order_by=newest_first, output_format="pandas", max_results=max_results)
    return mlflow.search_runs(experiment_names=[experiment], order_by=newest_first, output_format="pandas")


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
