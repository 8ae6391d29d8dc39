"""One way to seed the global random state of Python, NumPy and TensorFlow for a training run."""

from __future__ import annotations


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global state and TensorFlow together, and make TF ops deterministic.

    Explicit generators (`np.random.default_rng(seed)`) need no global seed; this is for what
    TensorFlow and Keras draw from their own global state (initializers, dropout, shuffles).
    TensorFlow is imported here, not at module level, so importing this module stays cheap.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
