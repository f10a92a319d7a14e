"""Clustering through fine-tuning, conversion and cluster-preserving QAT, counted in the files."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.compression import cluster
from qlab.conversion.converter import convert, convert_qat
from qlab.zoo.keras2 import keras
from qlab.numerics.compression import gzip_size

CLUSTERED = ("conv1", "conv2", "dense", "logits")  # every weight layer of mnist_cnn


def _hand_model() -> keras.Model:
    """conv 3x3x2 -> 4 whose channel c holds c + 1 distinct values; dense 36 -> 3 with 2 values."""
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="dense")])
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    for c in range(4):
        kernel[..., c] = (np.arange(18).reshape(3, 3, 2) % (c + 1)) * 0.25 - 0.5 * c
    dense = np.where(np.arange(108).reshape(36, 3) % 2, 0.5, -0.25).astype(np.float32)
    model.set_weights([kernel, np.zeros(4, np.float32), dense, np.zeros(3, np.float32)])
    return model


def test_tflite_unique_values_reads_each_output_channel_of_the_file():
    table = cluster.tflite_unique_values(convert(_hand_model(), "float32")).set_index("op")
    conv = table.loc["CONV_2D"]
    # TFLite stores the conv kernel as (out, kh, kw, in): channel c still has c + 1 values
    assert conv["shape"] == (4, 3, 3, 2) and conv["dtype"] == "float32"
    assert (conv["unique_per_channel_min"], conv["unique_per_channel_max"]) == (1, 4)
    assert table.loc["FULLY_CONNECTED", "unique"] == 2
    kept = cluster.clusters_kept(convert(_hand_model(), "float32"), 3).set_index("op")["kept"]
    assert kept.tolist() == [False, True]  # channel 3's four values are one too many


@pytest.fixture(scope="module")
def clustered_smoke():
    """The smoke mnist_cnn clustered to 16 (kmeans++, per tensor), fine-tuned and stripped."""
    from qlab.zoo.models import load_or_train, mnist_for

    model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x, y), _ = mnist_for("mnist_cnn", "smoke")
    stripped, info = cluster.fine_tune_clustered(cluster.cluster_model(model, 16), x[:256], y[:256],
                                                 epochs=1, batch_size=64, seed=0)
    return model, stripped, info, x, y


@pytest.mark.slow
def test_clustered_smoke_model_keeps_16_values_and_compresses(clustered_smoke):
    model, stripped, info, _, _ = clustered_smoke
    assert info["steps"] == 4 and info["epochs"] == 1
    table = cluster.unique_values_table(stripped).set_index("layer")
    assert table.loc[list(CLUSTERED), "unique"].max() <= 16
    assert cluster.unique_values_table(model).set_index("layer").loc["conv1", "unique"] > 200
    float_file, clustered_file = convert(model, "float32"), convert(stripped, "float32")
    assert cluster.clusters_kept(clustered_file, 16)["kept"].all()
    # 16 float32 values a tensor are about 4 bits of information per 32 stored
    assert gzip_size(clustered_file) < 0.4 * gzip_size(float_file)
    assert abs(len(clustered_file) - len(float_file)) < 1000  # stored densely all the same


@pytest.mark.slow
def test_cluster_preserving_qat_keeps_16_values_per_channel_in_the_int8_file(clustered_smoke):
    from qlab.qat.training import fine_tune
    from qlab.qat.ranges import start_from_data

    _, stripped, _, x, y = clustered_smoke
    cqat = cluster.quantize_preserving_clusters(stripped)
    start_from_data(cqat, stripped, x[:200])  # not TFMOT's [-6, 6]: a few steps would not move it
    fine_tune(cqat, x[:256], y[:256], epochs=1, batch_size=64, verbose=0, description="CQAT smoke")
    table = cluster.clusters_kept(convert_qat(cqat), 16)
    assert set(table["dtype"]) == {"int8"} and len(table) == 4
    assert table["kept"].all(), table
    assert table["unique_per_channel_max"].max() > 4  # not collapsed to a few values either


@pytest.mark.slow
def test_sparsity_and_cluster_preserving_qat_keeps_zeros_and_clusters(clustered_smoke):
    from qlab.qat.training import fine_tune
    from qlab.conversion.tflite import make_interpreter
    from qlab.conversion.tflite_file import operators

    model, _, _, x, y = clustered_smoke
    pruned = keras.models.clone_model(model)
    # half of each kernel set to zero by magnitude: a stand-in for TFMOT pruning
    pruned.set_weights([np.where(np.abs(w) < np.median(np.abs(w)), 0, w) if w.ndim > 1 else w
                        for w in model.get_weights()])
    stripped, _ = cluster.fine_tune_clustered(
        cluster.cluster_model(pruned, 8, preserve_sparsity=True), x[:256], y[:256], batch_size=64)
    zeros = {layer: float(np.mean(stripped.get_layer(layer).kernel.numpy() == 0)) for layer in CLUSTERED}
    assert min(zeros.values()) >= 0.49  # the zero centroid kept every pruned weight at zero
    pcqat = cluster.quantize_preserving_clusters(stripped, preserve_sparsity=True)
    fine_tune(pcqat, x[:256], y[:256], epochs=1, batch_size=64, verbose=0, description="PCQAT smoke")
    model_bytes = convert_qat(pcqat)
    assert cluster.clusters_kept(model_bytes, 8)["kept"].all()
    interpreter = make_interpreter(model_bytes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    stored = [interpreter.get_tensor(details[int(op["inputs"][1])]["index"])
              for op in operators(interpreter) if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    for weights, layer in zip(stored, CLUSTERED):
        assert np.mean(weights == 0) >= 0.95 * zeros[layer], layer


@pytest.mark.slow
def test_per_channel_clustering_through_cqat_keeps_16_values_per_channel(clustered_smoke):
    from qlab.qat.training import fine_tune
    from qlab.qat.ranges import start_from_data

    model, _, _, x, y = clustered_smoke
    clustered = cluster.cluster_model(model, 16, per_channel=True)
    # conv1 has 3 x 3 x 1 = 9 weights a channel: too few for 16 clusters, TFMOT leaves it alone
    plan = cluster.clusterable_layers(clustered).set_index("layer")
    assert plan.loc["conv1", "clustered"] == "" and plan.loc["conv2", "centroids"] == (64, 16)
    stripped, _ = cluster.fine_tune_clustered(clustered, x[:256], y[:256], batch_size=64)
    conv2 = cluster.unique_values_table(stripped).set_index("layer").loc["conv2"]
    assert conv2["unique_per_channel_max"] <= 16 < conv2["unique"]
    cqat = cluster.quantize_preserving_clusters(stripped)
    start_from_data(cqat, stripped, x[:200])  # builds a probe from the stripped model's input
    fine_tune(cqat, x[:256], y[:256], epochs=1, batch_size=64, verbose=0, description="CQAT smoke")
    table = cluster.clusters_kept(convert_qat(cqat), 16)
    assert table["kept"].all(), table
