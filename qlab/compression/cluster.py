"""Weight clustering with TFMOT, and quantization-aware training that keeps the clusters.

- :func:`cluster_model`: ``tfmot.clustering.keras.cluster_weights`` on a copy of a model:
  each clustered kernel may only hold ``number_of_clusters`` distinct values (per tensor,
  or per output channel of a Conv2D with ``per_channel=True``).
- :func:`fine_tune_clustered`: fine-tune the centroids, then ``strip_clustering``.
- :func:`quantize_preserving_clusters`: CQAT / PCQAT, ``quantize_apply`` with
  ``tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme``; fine-tune it with
  :func:`qlab.qat.training.fine_tune`, convert with :func:`qlab.conversion.converter.convert_qat`.
- :func:`unique_values_table` (a Keras model) and :func:`tflite_unique_values` (a
  ``.tflite`` file) count what survived, per output channel: batch-norm folding and
  per-channel int8 scales multiply each channel by its own factor, so a tensor clustered
  to 16 values keeps at most 16 per channel, not per tensor.

What TFMOT 0.8 clusters (``ClusteringRegistry``): the ``kernel`` of Conv1D/2D/3D (and
their transposes), Dense and LocallyConnected; the ``pointwise_kernel`` of SeparableConv;
``embeddings``; RNN cells and MultiHeadAttention. It maps DepthwiseConv2D,
BatchNormalization and LayerNormalization to no weights ("big unrecoverable accuracy
loss" for depthwise), never clusters biases, and leaves a Conv2D whose kernel has no more
weights than clusters (per channel: weights per channel) as it is, with a warning.
``cluster_per_channel`` only acts on Conv2D (and subclasses); a Dense kernel is
clustered per tensor whatever it says. :func:`clusterable_layers` lists this for a model.

Taught in ``09_deep_compression``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.zoo.keras2 import require_keras2_model, tfmot
from qlab.zoo.models import copy_model
from qlab.numerics.compression import unique_values_per_channel
from qlab.numerics.validate import check_bool, check_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CENTROID_INITS", "centroid_initialization", "cluster_model", "clusterable_layers",
           "fine_tune_clustered", "quantize_preserving_clusters", "unique_values_table",
           "tflite_unique_values", "clusters_kept"]

tfmot_cluster = tfmot.clustering.keras
#: qlab's names for TFMOT's ``CentroidInitialization`` members.
CENTROID_INITS = {
    "kmeans_plus_plus": tfmot_cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": tfmot_cluster.CentroidInitialization.LINEAR,
    "density_based": tfmot_cluster.CentroidInitialization.DENSITY_BASED,
    "random": tfmot_cluster.CentroidInitialization.RANDOM,
}
#: Cluster-preserving QAT keeps at most this many centroids in a tensor (TFMOT's limit).
MAX_CLUSTERS = 1024
#: Fine-tuning a clustered model: the centroids only have to settle, so a small rate.
CLUSTER_LEARNING_RATE = 1e-4
#: Keras weight attribute -> how its output channels are laid out, for counting.
_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")
#: TFLite weight op -> output-channel axis of its weight tensor.
_TFLITE_CHANNEL_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0,
                        "DEPTHWISE_CONV_2D": 3}


def centroid_initialization(centroid_init: Any) -> Any:
    """TFMOT's ``CentroidInitialization`` for a qlab name ("kmeans_plus_plus", "linear", ...).

    A ``CentroidInitialization`` member is returned as it is. Taught in ``09_deep_compression``.
    """
    if isinstance(centroid_init, tfmot_cluster.CentroidInitialization):
        return centroid_init
    if isinstance(centroid_init, str) and centroid_init.lower() in CENTROID_INITS:
        return CENTROID_INITS[centroid_init.lower()]
    raise ValueError(f"centroid_init must be one of {', '.join(CENTROID_INITS)} "
                     f"(or a tfmot.clustering.keras.CentroidInitialization), got {centroid_init!r}")


def cluster_model(model: Any, number_of_clusters: int, centroid_init: Any = "kmeans_plus_plus",
                  per_channel: bool = False, preserve_sparsity: bool = False) -> Any:
    """``tfmot.clustering.keras.cluster_weights`` on a copy of ``model``; ``model`` is not changed.

    Taught in ``09_deep_compression``.

    Args:
        model: a trained float Keras 2 (tf_keras) model.
        number_of_clusters: distinct values each clustered kernel may hold, 2 to 1024
            (3 or more with ``preserve_sparsity``: zero is one of them).
        centroid_init: "kmeans_plus_plus", "linear", "density_based" or "random"
            (TFMOT's ``CentroidInitialization``).
        per_channel: cluster each output channel of a Conv2D kernel on its own
            (``cluster_per_channel``); Dense kernels are clustered per tensor regardless.
        preserve_sparsity: keep the zeros of a pruned model at zero (one centroid is 0).

    Returns:
        The model with ``ClusterWeights`` wrappers, to fine-tune with :func:`fine_tune_clustered`.
    """
    model = require_keras2_model(model)
    preserve_sparsity = check_bool(preserve_sparsity, "preserve_sparsity")
    number_of_clusters = check_int(number_of_clusters, "number_of_clusters",
                                   3 if preserve_sparsity else 2, MAX_CLUSTERS)
    init = centroid_initialization(centroid_init)
    per_channel = check_bool(per_channel, "per_channel")
    with warnings.catch_warnings():  # "Layer x does not have enough weights": clusterable_layers says so
        warnings.simplefilter("ignore", UserWarning)
        return tfmot_cluster.cluster_weights(
            copy_model(model), number_of_clusters=number_of_clusters, cluster_centroids_init=init,
            cluster_per_channel=per_channel, preserve_sparsity=preserve_sparsity)


def _clustered_weight_names(layer: Any) -> list[str]:
    """The weights a ``ClusterWeights`` wrapper really clusters (none for depthwise, BN, ...)."""
    return sorted(getattr(layer, "cluster_centroids", {}))


def clusterable_layers(clustered: Any) -> pd.DataFrame:
    """Which layers of a model from :func:`cluster_model` are clustered, and how.

    Columns: ``layer``, ``class``, ``clustered`` (the weight names, "" for none),
    ``per_channel``, ``centroids`` (shape of the centroid table: (clusters,) per tensor,
    (channels, clusters) per channel) and ``note`` saying why a weight layer was left alone.
    Taught in ``09_deep_compression``.
    """
    import pandas as pd

    rows = []
    for layer in require_keras2_model(clustered, "clustered").layers:
        inner = getattr(layer, "layer", layer)
        names = _clustered_weight_names(layer)
        note = ""
        if not names and inner.trainable_weights:
            note = ("TFMOT maps it to no weights" if hasattr(layer, "cluster_centroids")
                    else "not wrapped: too few weights for the clusters")
        rows.append({"layer": inner.name, "class": type(inner).__name__,
                     "clustered": ", ".join(names),
                     "per_channel": bool(getattr(layer, "cluster_per_channel", False)) and bool(names),
                     "centroids": tuple(layer.cluster_centroids[names[0]].shape) if names else (),
                     "note": note})
    return pd.DataFrame(rows)


def fine_tune_clustered(clustered: Any, x: np.ndarray, y: np.ndarray, epochs: int = 1,
                        batch_size: int = 128, learning_rate: float = CLUSTER_LEARNING_RATE,
                        seed: int = 0, description: str = "clustering fine-tune",
                        verbose: int | str = 0) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a clustered model (Adam, cosine-decayed rate), then ``strip_clustering``.

    The centroids are trained (each gets the sum of its weights' gradients) and every
    step re-assigns each weight to its nearest centroid. Taught in ``09_deep_compression``.

    Returns:
        ``(stripped, info)``: the plain Keras model with clustered weights, compiled, and
        ``{"fine_tune_seconds", "steps", "epochs", "learning_rate"}``.
    """
    from qlab.zoo.models import compile_for_training
    from qlab.zoo.progress import fit_progress
    from qlab.zoo.seed import set_seed

    clustered = require_keras2_model(clustered, "clustered")
    if not any(_clustered_weight_names(layer) for layer in clustered.layers):
        raise ValueError("clustered has no clustered weights: make it with "
                         "qlab.compression.cluster.cluster_model (tfmot.clustering.keras.cluster_weights)")
    epochs = check_int(epochs, "epochs", 0, 1000)
    steps = epochs * math.ceil(len(x) / batch_size)
    compile_for_training(clustered, learning_rate, decay_steps=steps or None)
    set_seed(seed)
    start = time.perf_counter()
    if epochs:
        clustered.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose,
                      callbacks=fit_progress(description))
    seconds = time.perf_counter() - start
    # a fresh copy: strip_clustering reuses the layers it left unwrapped (too few weights),
    # which then belong to two models, and a probe built from the stripped model's input fails
    stripped = compile_for_training(copy_model(tfmot_cluster.strip_clustering(clustered)), learning_rate)
    return stripped, {"fine_tune_seconds": round(seconds, 1), "steps": steps, "epochs": epochs,
                      "learning_rate": learning_rate}


def quantize_preserving_clusters(model: Any, preserve_sparsity: bool = False) -> Any:
    """CQAT (PCQAT with ``preserve_sparsity``): a QAT model that keeps a clustered model's clusters.

    ``quantize_annotate_model`` then ``quantize_apply`` with
    ``tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity)``:
    TFMOT's default 8-bit scheme whose Conv2D and Dense weight quantizers re-cluster the
    weights to the model's own distinct values at every training step (per channel for a
    Conv2D whose channels all hold about as many values, else per tensor); with
    ``preserve_sparsity`` the zeros stay zero too. Fine-tune with
    :func:`qlab.qat.training.fine_tune`, convert with :func:`qlab.conversion.converter.convert_qat`.
    Taught in ``09_deep_compression``.

    Args:
        model: a clustered model after ``strip_clustering`` (:func:`fine_tune_clustered`).
        preserve_sparsity: PCQAT, for a model pruned before it was clustered.
    """
    model = require_keras2_model(model)
    preserve_sparsity = check_bool(preserve_sparsity, "preserve_sparsity")
    if any(hasattr(layer, "cluster_centroids") for layer in model.layers):
        raise ValueError("model still has ClusterWeights wrappers: strip them first "
                         "(tfmot.clustering.keras.strip_clustering, or fine_tune_clustered)")
    from qlab.qat.quantize import quantize_with_scheme

    scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity)
    with warnings.catch_warnings():  # per-layer notes of the scheme; the final file is counted
        warnings.simplefilter("ignore", UserWarning)
        return quantize_with_scheme(model, scheme)


def _weight_channels(layer: Any) -> list[tuple[str, np.ndarray]]:
    """``(attribute, kernel as (..., output channels))`` for each kernel of a plain Keras layer."""
    found = []
    for attr in _KERNEL_ATTRS:
        weight = getattr(layer, attr, None)
        if weight is None or not hasattr(weight, "numpy"):
            continue
        values = weight.numpy()
        if attr == "depthwise_kernel":  # (kh, kw, in, multiplier): channel = in x multiplier
            values = values.reshape(values.shape[:-2] + (-1,))
        found.append((attr, values))
    return found


def unique_values_table(model: Any) -> pd.DataFrame:
    """Distinct values in each kernel of a Keras model: per tensor and per output channel.

    Columns: ``layer``, ``class``, ``weight``, ``shape``, ``channels``, ``unique`` (whole
    tensor), ``unique_per_channel_min`` and ``unique_per_channel_max``. A float model
    has thousands; a kernel clustered to 16 has at most 16 per tensor (per channel with
    ``per_channel=True``). Wrapped models (clustering, QAT) are refused: strip them first.
    Taught in ``09_deep_compression``.
    """
    import pandas as pd

    rows = []
    for layer in require_keras2_model(model).layers:
        if type(layer).__module__.startswith("tensorflow_model_optimization"):
            raise ValueError(f"layer {layer.name!r} is a {type(layer).__name__} wrapper: count "
                             "the plain model (tfmot.clustering.keras.strip_clustering) or the "
                             "converted file (tflite_unique_values)")
        for attr, values in _weight_channels(layer):
            per_channel = unique_values_per_channel(values, -1)
            rows.append({"layer": layer.name, "class": type(layer).__name__, "weight": attr,
                         "shape": tuple(getattr(layer, attr).shape), "channels": per_channel.size,
                         "unique": int(np.unique(values).size),
                         "unique_per_channel_min": int(per_channel.min()),
                         "unique_per_channel_max": int(per_channel.max())})
    return pd.DataFrame(rows)


def tflite_unique_values(model_bytes: bytes) -> pd.DataFrame:
    """Distinct stored values in each weight tensor of a ``.tflite`` file, per output channel.

    One row per CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV op:
    ``op``, ``tensor``, ``dtype`` (float32, or int8 for an integer file: its int8 values
    are counted), ``shape``, ``channels``, ``unique`` (whole tensor),
    ``unique_per_channel_min``/``_max``. Taught in ``09_deep_compression``.
    """
    import pandas as pd

    from qlab.conversion.tflite_file import file_weights

    rows = []
    for detail, op_name, values in file_weights(model_bytes):
        per_channel = unique_values_per_channel(values, _TFLITE_CHANNEL_AXIS[op_name])
        rows.append({"op": op_name, "tensor": detail["name"], "dtype": values.dtype.name,
                     "shape": tuple(int(s) for s in values.shape), "channels": per_channel.size,
                     "unique": int(np.unique(values).size),
                     "unique_per_channel_min": int(per_channel.min()),
                     "unique_per_channel_max": int(per_channel.max())})
    return pd.DataFrame(rows)


def clusters_kept(model_bytes: bytes, number_of_clusters: int) -> pd.DataFrame:
    """:func:`tflite_unique_values` with a ``kept`` column: no channel above ``number_of_clusters``.

    DEPTHWISE_CONV_2D rows get ``kept = None``: TFMOT never clusters depthwise kernels.
    A clustered model passes when every other row is True (``table["kept"].dropna().all()``).
    Taught in ``09_deep_compression``.
    """
    number_of_clusters = check_int(number_of_clusters, "number_of_clusters", 2, MAX_CLUSTERS)
    table = tflite_unique_values(model_bytes)
    table["kept"] = [None if op == "DEPTHWISE_CONV_2D" else bool(top <= number_of_clusters)
                     for op, top in zip(table["op"], table["unique_per_channel_max"])]
    return table
