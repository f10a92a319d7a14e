"""Weight clustering on tiny models, no training: errors, which layers TFMOT clusters, counting."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.compression import cluster
from qlab.zoo.keras2 import keras, tfmot

layers = keras.layers


def tiny_model() -> keras.Model:
    """conv (3x3x3 -> 8) -> BN -> depthwise -> 1x1 conv (8 -> 6) -> dense 5, random weights."""
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        layers.Conv2D(8, 3, name="conv"),
        layers.BatchNormalization(name="bn"),
        layers.DepthwiseConv2D(3, name="dw"),
        layers.Conv2D(6, 1, name="pw"),
        layers.Flatten(name="flatten"),
        layers.Dense(5, name="dense"),
    ], name="tiny")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) if w.ndim > 1 else
                       np.abs(rng.normal(size=w.shape)).astype(np.float32) + 0.5
                       for w in model.get_weights()])
    return model


@pytest.mark.parametrize("bad", [1, 0, -3, 1025, 2.5, "8", True, None])
def test_number_of_clusters_must_be_an_int_of_at_least_two(bad):
    with pytest.raises(ValueError, match=r"number_of_clusters must be an integer in \[2, 1024\]"):
        cluster.cluster_model(tiny_model(), bad)


def test_sparsity_preserving_clustering_needs_three_clusters():
    with pytest.raises(ValueError, match=r"number_of_clusters must be an integer in \[3, 1024\], got 2"):
        cluster.cluster_model(tiny_model(), 2, preserve_sparsity=True)


def test_unknown_centroid_init_lists_the_valid_names():
    with pytest.raises(ValueError, match="kmeans_plus_plus, linear, density_based, random.*'kmeans'"):
        cluster.cluster_model(tiny_model(), 4, centroid_init="kmeans")
    with pytest.raises(TypeError, match="per_channel must be True or False"):
        cluster.cluster_model(tiny_model(), 4, per_channel="yes")


def test_centroid_init_accepts_names_and_tfmot_members():
    init = tfmot.clustering.keras.CentroidInitialization
    assert cluster.centroid_initialization("LINEAR") is init.LINEAR
    assert cluster.centroid_initialization(init.DENSITY_BASED) is init.DENSITY_BASED


def test_which_layers_tfmot_clusters():
    model = tiny_model()
    table = cluster.clusterable_layers(cluster.cluster_model(model, 4)).set_index("layer")
    assert table.loc["conv", "clustered"] == "kernel" and table.loc["dense", "clustered"] == "kernel"
    # the registry maps DepthwiseConv2D and BatchNormalization to no weights
    assert table.loc["dw", "clustered"] == "" and table.loc["dw", "note"] == "TFMOT maps it to no weights"
    assert table.loc["bn", "clustered"] == ""
    # 8 x 6 = 48 weights > 4 clusters: clustered per tensor; per channel only 8 weights a channel
    assert table.loc["pw", "clustered"] == "kernel"
    per_channel = cluster.clusterable_layers(cluster.cluster_model(model, 8, per_channel=True))
    per_channel = per_channel.set_index("layer")
    assert per_channel.loc["pw", "clustered"] == ""
    assert per_channel.loc["pw", "note"] == "not wrapped: too few weights for the clusters"
    assert per_channel.loc["conv", "per_channel"] and per_channel.loc["conv", "centroids"] == (8, 8)
    # cluster_per_channel only acts on Conv2D: the Dense kernel keeps one table of 8 centroids
    assert not per_channel.loc["dense", "per_channel"] and per_channel.loc["dense", "centroids"] == (8,)


def test_clustering_copies_the_model_and_strip_leaves_few_values():
    model = tiny_model()
    before = [w.copy() for w in model.get_weights()]
    stripped = tfmot.clustering.keras.strip_clustering(cluster.cluster_model(model, 4))
    for original, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(original, now)
    table = cluster.unique_values_table(stripped).set_index("layer")
    assert table.loc[["conv", "pw", "dense"], "unique"].tolist() == [4, 4, 4]
    assert table.loc["dw", "unique"] == 3 * 3 * 8  # depthwise untouched
    assert cluster.unique_values_table(model).set_index("layer").loc["conv", "unique"] == 3 * 3 * 3 * 8


def test_per_channel_clustering_bounds_each_channel_not_the_tensor():
    stripped = tfmot.clustering.keras.strip_clustering(
        cluster.cluster_model(tiny_model(), 4, centroid_init="linear", per_channel=True))
    conv = cluster.unique_values_table(stripped).set_index("layer").loc["conv"]
    assert conv["unique_per_channel_max"] <= 4 and conv["unique"] > 4


def test_unique_values_table_counts_hand_set_kernels():
    model = tiny_model()
    kernel = np.zeros((3, 3, 3, 8), np.float32)
    kernel[..., 1] = np.arange(27).reshape(3, 3, 3)
    kernel[0, 0, 0, 2] = 5.0
    model.get_layer("conv").kernel.assign(kernel)
    row = cluster.unique_values_table(model).set_index("layer").loc["conv"]
    assert (row["unique"], row["unique_per_channel_min"], row["unique_per_channel_max"]) == (27, 1, 27)
    assert row["channels"] == 8 and row["shape"] == (3, 3, 3, 8)
    # a DepthwiseConv2D's channels are its input channels x depth multiplier
    assert cluster.unique_values_table(model).set_index("layer").loc["dw", "channels"] == 8


def test_wrapped_models_are_refused_with_the_way_out():
    clustered = cluster.cluster_model(tiny_model(), 4)
    with pytest.raises(ValueError, match="wrapper.*strip_clustering"):
        cluster.unique_values_table(clustered)
    with pytest.raises(ValueError, match="strip them first"):
        cluster.quantize_preserving_clusters(clustered)


def test_fine_tune_refuses_a_model_that_is_not_clustered():
    with pytest.raises(ValueError, match="no clustered weights.*cluster_model"):
        cluster.fine_tune_clustered(tiny_model(), np.zeros((2, 8, 8, 3)), np.zeros(2), epochs=1)


def test_stripped_model_owns_its_layers_even_those_left_unclustered():
    """strip_clustering hands back the unwrapped 1x1 conv itself; a probe on it must still build."""
    model = tiny_model()
    clustered = cluster.cluster_model(model, 8, per_channel=True)  # "pw" has 8 weights a channel
    assert cluster.clusterable_layers(clustered).set_index("layer").loc["pw", "clustered"] == ""
    raw = tfmot.clustering.keras.strip_clustering(clustered)
    with pytest.raises(ValueError, match="Graph disconnected"):
        keras.Model(raw.inputs, raw.get_layer("pw").output)
    stripped, info = cluster.fine_tune_clustered(clustered, np.zeros((4, 8, 8, 3)), np.zeros(4), epochs=0)
    assert info["steps"] == 0
    probe = keras.Model(stripped.inputs, stripped.get_layer("pw").output)
    assert probe.output_shape == (None, 4, 4, 6)
    np.testing.assert_array_equal(stripped.get_layer("pw").kernel.numpy(), model.get_layer("pw").kernel.numpy())
