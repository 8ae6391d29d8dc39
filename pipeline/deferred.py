"""TensorFlow and Keras, imported on first use instead of when a module that uses them is imported.

Importing TensorFlow costs 5-9 s of CPU. The content models need it to train and to embed users or
movies they have not embedded yet, but scoring the training users and the catalogue reads the
vectors saved at training time: evaluate, promote, the batch recommendations and most `recsys`
commands then run without it. Modules write

    if TYPE_CHECKING:
        import keras
        import tensorflow as tf
    else:
        from pipeline.deferred import keras, tf

and use `keras.layers...` / `tf.data...` as usual: the first attribute read imports the library.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any


class DeferredModule(ModuleType):
    """Stands for the module `name`; the first attribute read imports it (then every read is a lookup on it)."""

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # introspection (copy, pickle, doctest) must not import TensorFlow
            raise AttributeError(attribute)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's native libraries load
        return getattr(importlib.import_module(self.__name__), attribute)


keras = DeferredModule("keras")
tf = DeferredModule("tensorflow")
