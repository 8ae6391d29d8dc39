"""One seeding helper: the same seed gives the same draws from every global generator a model uses."""

from __future__ import annotations

import random

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from pipeline.seeding import seed_everything


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.random()), float(tf.random.uniform(()))


def test_the_same_seed_repeats_python_numpy_and_tensorflow_draws_and_ops_are_deterministic():
    seed_everything(11)
    first = draws()
    seed_everything(11)
    assert draws() == first
    seed_everything(12)
    assert draws() != first
    assert tf_config.is_op_determinism_enabled()  # not exported under tf.config
