"""Training on several machines: the TF_CONFIG cluster, TensorFlow's MultiWorkerMirroredStrategy over it,
and the error a worker reports when a peer is lost.

TF_CONFIG is read once, by the train_content stage: `worker_task(os.environ.get("TF_CONFIG"))` gives
the `WorkerTask` that the stage hands to `ContentModel.fit`, and the strategy is built from that task
(TensorFlow is given the cluster, it does not read TF_CONFIG itself).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
else:
    from pipeline.deferred import keras, tf

from pipeline.errors import ConfigError, ModelError

MULTI_WORKER = "multi_worker"
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def worker_failures() -> tuple[type[Exception], ...]:
    """What a collective raises when a peer died, timed out or the cluster aborted it."""
    errors = tf.errors
    return (
        errors.UnavailableError,
        errors.DeadlineExceededError,
        errors.CancelledError,
        errors.AbortedError,
        errors.InternalError,
        errors.FailedPreconditionError,
    )


@dataclasses.dataclass(frozen=True)
class WorkerTask:
    """This process's place in the TF_CONFIG cluster: worker `index` of `workers` (host:port each)."""

    workers: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        """Worker 0 is the chief: the one that writes the model, metrics and MLflow run."""
        return self.index == 0


def worker_task(tf_config: str | None) -> WorkerTask:
    """The cluster and task of a TF_CONFIG value, or a ConfigError saying what is wrong with it."""
    if not tf_config:
        raise ConfigError(
            f"content.distribute is multi_worker but TF_CONFIG is not set; set it on each worker, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
        )
    try:
        config = json.loads(tf_config)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc}); expected e.g. {TF_CONFIG_EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if not (isinstance(workers, list) and workers and all(isinstance(w, str) and re.fullmatch(r"\S+:\d+", w) for w in workers)):
        raise ConfigError(
            f"TF_CONFIG: cluster.worker must be a non-empty list of 'host:port' strings, got {workers!r}; e.g. {TF_CONFIG_EXAMPLE}"
        )
    if len(set(workers)) < len(workers):
        raise ConfigError(f"TF_CONFIG: cluster.worker lists the same host:port twice: {workers}")
    assert isinstance(cluster, dict), "cluster.worker was read from the cluster mapping"
    others = sorted(set(cluster) - {"worker"})
    if others:
        raise ConfigError(f"TF_CONFIG: cluster has {', '.join(others)} job(s); list every machine under 'worker' (worker 0 is the chief)")
    task = config.get("task")
    index = task.get("index") if isinstance(task, dict) else None
    if not (isinstance(task, dict) and task.get("type") == "worker" and type(index) is int and 0 <= index < len(workers)):
        raise ConfigError(f'TF_CONFIG: task must be {{"type": "worker", "index": i}} with 0 <= i < {len(workers)}, got {task!r}')
    return WorkerTask(tuple(workers), index)


def multi_worker_strategy(task: WorkerTask, timeout: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy on `task`'s cluster; every collective (gradient all-reduce,
    metric sync) fails after `timeout` seconds without the other workers."""
    cluster = tf.train.ClusterSpec({"worker": list(task.workers)})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, task_type="worker", task_id=task.index, rpc_layer="grpc")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)


def adapt_for_multi_worker(trainer: keras.Model, element_spec: Any, strategy: tf.distribute.Strategy) -> None:
    """Two work-arounds that let Keras 3.15 `fit` run under MultiWorkerMirroredStrategy.

    1. Keras builds a model trained under a strategy from its first batch averaged across the
       workers (TensorflowTrainer._maybe_symbolic_build); that fails on these batches, whose
       distinct-user and distinct-movie tables differ in size between workers. The trainer is
       built from the dataset's element spec instead and that step is skipped.
    2. Keras averages each step's logs across workers with strategy.reduce(MEAN, axis=0), which
       refuses scalars (tensorflow/tensorflow#72388): the steps return them as shape (1,).
       The logs are then the mean of the workers' own running means.
    """
    with strategy.scope():
        trainer._symbolic_build(data_batch=element_spec)
    trainer._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    train_step, test_step = trainer.train_step, trainer.test_step

    def as_vectors(logs: Mapping[str, Any]) -> dict[str, Any]:
        return {key: tf.reshape(value, [1]) for key, value in logs.items()}

    trainer.train_step = lambda data: as_vectors(train_step(data))
    trainer.test_step = lambda data: as_vectors(test_step(data))


def worker_failure(exc: tf.errors.OpError, task: WorkerTask) -> ModelError:
    """The error of a multi-worker run whose collective failed: which peer was lost, if TF says."""
    lost = sorted({int(i) for i in re.findall(r"/job:worker/(?:replica:\d+/)?task:(\d+)", exc.message)} - {task.index})
    peers = ", ".join(f"worker {i} ({task.workers[i]})" for i in lost if i < len(task.workers))
    what = f"lost {peers}" if peers else f"a collective failed or waited longer than content.collective_timeout ({type(exc).__name__})"
    return ModelError(
        f"multi-worker training stopped on worker {task.index} ({task.workers[task.index]}): {what}; "
        "no model was written. Start every worker again with the same command."
    )
