"""The one place where qlab chooses Keras 2 (``tf_keras``) over Keras 3.

tensorflow-model-optimization only works with Keras 2. TensorFlow decides which
Keras ``tf.keras`` means when it is first imported, from ``TF_USE_LEGACY_KERAS``,
so this module sets that variable before importing TensorFlow. Every other qlab
module gets TensorFlow, Keras and TFMOT from here::

    from qlab.zoo.keras2 import tf, keras, tfmot

Importing this module is slow (it imports TensorFlow); ``import qlab`` does not
import it - the modules that need TensorFlow do, when they are first used.
"""

from __future__ import annotations

import os
import sys

from qlab.zoo.quiet import native_stderr_silenced

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    # TensorFlow was imported before qlab without the variable. qlab itself only
    # ever uses tf_keras, so it still works; tf.keras in the user's code is Keras 3.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
else:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with native_stderr_silenced():
    import tensorflow as tf
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    tf.config.list_physical_devices()  # device discovery prints the CUDA lines; do it now, quietly
# "INFO:tensorflow:Assets written to ..." on every conversion is noise in a lesson
tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras", "tfmot", "require_keras2_model"]


def require_keras2_model(model: object, argument: str = "model") -> keras.Model:
    """Return ``model`` if it is a Keras 2 (tf_keras) model, else raise a clear TypeError.

    A Keras 3 model (``import keras`` or ``tf.keras`` without
    ``TF_USE_LEGACY_KERAS=1``) fails deep inside TFMOT with an unhelpful trace;
    this check names the problem and the fix instead: the tf_keras rebuild of
    :func:`qlab.zoo.keras3.rebuild_in_tf_keras`.
    """
    if isinstance(model, keras.Model):
        return model
    module = type(model).__module__
    if module.startswith("keras"):
        raise TypeError(
            f"{argument} is a Keras 3 model ({type(model).__module__}.{type(model).__name__}); "
            "tensorflow-model-optimization needs a Keras 2 (tf_keras) model. Rebuild it in "
            "tf_keras with qlab.zoo.keras3.rebuild_in_tf_keras(model).model (same layers and "
            "weights, outputs checked); qlab.compare_keras_model takes the Keras 3 model as it "
            "is and does that for its QAT variants."
        )
    raise TypeError(f"{argument} must be a tf_keras Model, got {type(model).__name__}")
