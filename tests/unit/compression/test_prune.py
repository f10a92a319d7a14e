"""TFMOT pruning on tiny seeded models: schedule checks, what is pruned, 2:4 structure, zeros counted."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.compression import prune
from qlab.compression.prune import sparsity_keras
from qlab.zoo.keras2 import keras
from qlab.zoo.seed import set_seed
from qlab.numerics.sparsity import is_m_by_n_sparse

layers = keras.layers


def mobilenet_like() -> keras.Model:
    """conv -> BN -> ReLU -> depthwise -> pointwise conv -> pool -> dense: what TFMOT prunes and what not."""
    set_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(x))
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Conv2D(16, 1, name="pw")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(4, name="logits")(x), name="mobilenet_like")


def _data(shape, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, 4, n)


class Scale(layers.Layer):
    """A custom layer TFMOT's registry does not know, without weights."""

    def call(self, inputs):
        return 2.0 * inputs


class LearnedScale(layers.Layer):
    """A custom layer TFMOT's registry does not know, with a weight."""

    def build(self, input_shape):
        self.factor = self.add_weight(name="factor", shape=(), initializer="ones")

    def call(self, inputs):
        return self.factor * inputs


def test_tfmot_registry_prunes_kernels_but_maps_depthwise_to_nothing():
    assert prune.tfmot_prunable_weights(layers.Conv2D(2, 3)) == ["kernel"]
    assert prune.tfmot_prunable_weights(layers.Dense(2)) == ["kernel"]
    assert prune.tfmot_prunable_weights(layers.SeparableConv2D(2, 3)) == ["pointwise_kernel"]
    assert prune.tfmot_prunable_weights(layers.DepthwiseConv2D(3)) == []
    assert prune.tfmot_prunable_weights(layers.BatchNormalization()) == []
    assert prune.tfmot_prunable_weights(Scale()) is None


@pytest.mark.parametrize("kwargs, match", [
    ({"target_sparsity": 0.0}, "target_sparsity must be in \\(0, 1\\)"),
    ({"target_sparsity": 1.0}, "target_sparsity must be in \\(0, 1\\)"),
    ({"initial_sparsity": 0.9}, "initial_sparsity must be below target_sparsity"),
    ({"begin_step": -1}, "begin_step must be an integer"),
    ({"begin_step": 200, "end_step": 200}, "end_step must be an integer in \\[201"),
    ({"frequency": 0}, "frequency must be an integer"),
    ({"end_step": 250}, "multiple of frequency \\(100\\).*Use end_step=200 or 300"),
    ({"end_step": None}, "target_sparsity and end_step are needed"),
    ({"m_by_n": (2, 4)}, "m_by_n=\\(2, 4\\) the sparsity is m/n = 0.5.*target_sparsity=None"),
    ({"target_sparsity": None, "m_by_n": (4, 2)}, "m_by_n must be a pair"),
])
def test_prune_model_rejects_bad_schedules_naming_the_argument(kwargs, match):
    args = {"target_sparsity": 0.75, "begin_step": 0, "end_step": 300, **kwargs}
    with pytest.raises(ValueError, match=match):
        prune.prune_model(mobilenet_like(), **args)


def test_prune_model_names_a_layer_with_weights_tfmot_cannot_wrap():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(2, name="d")(LearnedScale(name="scale")(inputs)))
    with pytest.raises(ValueError, match="'scale' \\(LearnedScale\\).*get_prunable_weights"):
        prune.prune_model(model, 0.5, 0, 100)


def test_a_weightless_layer_tfmot_does_not_know_is_kept_unwrapped():
    """TFMOT's whole-model call refuses it (a Keras Rescaling, say); it has nothing to prune.

    (TFMOT's clustering registry accepts every weightless layer, so cluster_weights needs no such care.)
    """
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(8, name="d")(Scale(name="scale")(inputs)), name="m")
    with pytest.raises(ValueError, match="supported layer|not supported|Please initialize"):
        sparsity_keras.prune_low_magnitude(model, pruning_schedule=sparsity_keras.ConstantSparsity(0.5, 0))
    pruned = prune.prune_model(model, 0.5, 0, 100)
    kinds = {layer.name: type(layer).__name__ for layer in pruned.layers}
    assert kinds["scale"] == "Scale" and kinds["prune_low_magnitude_d"] == "PruneLowMagnitude"


def test_pruning_end_step_is_the_last_update_a_fine_tune_reaches():
    assert prune.pruning_end_step(469 * 2, frequency=100) == 900
    assert prune.pruning_end_step(938, frequency=100, begin_step=50) == 850
    assert prune.pruning_end_step(10, frequency=1) == 10
    with pytest.raises(ValueError, match="no pruning update"):
        prune.pruning_end_step(99, frequency=100)


def test_fine_tune_refuses_a_schedule_that_ends_after_training():
    pruned = prune.prune_model(mobilenet_like(), 0.5, begin_step=0, end_step=8, frequency=1)
    x, y = _data((8, 8, 4))
    with pytest.raises(ValueError, match="runs 4 steps.*end_step=8.*end_step <= 4"):
        prune.fine_tune_pruned(pruned, x, y, epochs=1, batch_size=16)


def test_fine_tune_reaches_the_target_on_the_last_step_and_leaves_depthwise_dense(monkeypatch):
    monkeypatch.setenv("QLAB_PROGRESS", "0")
    model = mobilenet_like()
    original = [w.copy() for w in model.get_weights()]
    x, y = _data((8, 8, 4))
    steps = 4  # 64 images in batches of 16
    end_step = prune.pruning_end_step(steps, frequency=2)
    pruned = prune.prune_model(model, 0.5, begin_step=0, end_step=end_step, frequency=2)
    stripped, info = prune.fine_tune_pruned(pruned, x, y, epochs=1, batch_size=16, description="test")
    assert info["steps"] == steps and info["end_step"] == 4
    table = prune.sparsity_table(stripped).set_index("layer")
    assert table.loc["dw", "weight"] == "depthwise_kernel" and not table.loc["dw", "prunable"]
    assert table.loc["dw", "zeros"] == 0  # wrapped by prune_low_magnitude, never pruned
    for name in ("conv", "pw", "logits"):
        assert table.loc[name, "prunable"]
        assert table.loc[name, "sparsity"] == pytest.approx(0.5, abs=0.01)
        assert info["sparsity"][name] == table.loc[name, "sparsity"]
    assert "dw" not in info["sparsity"]
    # a plain model, one graph: a layer's output can be read (as start_from_data does)
    keras.Model(stripped.inputs, stripped.get_layer("pw").output)
    # prune_model copied the model: the caller's float weights did not change
    for before, after in zip(original, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_sparsity_table_of_a_float_model_shows_what_tfmot_would_prune():
    table = prune.sparsity_table(mobilenet_like())
    assert list(table["layer"]) == ["conv", "dw", "pw", "logits"]
    assert list(table["prunable"]) == [True, False, True, True]
    assert (table["zeros"] == 0).all() and list(table["size"]) == [3 * 3 * 4 * 8, 3 * 3 * 8, 8 * 16, 16 * 4]


def test_two_by_four_sparsity_groups_input_channels(monkeypatch):
    monkeypatch.setenv("QLAB_PROGRESS", "0")
    set_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = layers.Conv2D(8, 3, name="first")(inputs)  # one input channel: nothing 2:4 can prune
    x = layers.Conv2D(8, 3, name="second")(x)
    outputs = layers.Dense(4, name="logits")(layers.Flatten()(x))
    pruned = prune.prune_model(keras.Model(inputs, outputs), None, m_by_n=(2, 4))
    x_train, y_train = _data((6, 6, 1), n=32)
    stripped, info = prune.fine_tune_pruned(pruned, x_train, y_train, epochs=1, batch_size=16)
    for name in ("second", "logits"):
        kernel = stripped.get_layer(name).kernel.numpy()
        assert is_m_by_n_sparse(kernel, (2, 4), axis=-2)
        assert info["sparsity"][name] == 0.5  # in multiple of 4 channels: exactly half
    assert info["sparsity"]["first"] == 0.0


@pytest.mark.parametrize("shape", [(3, 3, 8, 4), (3, 3, 6, 2), (12, 6), (10, 3)])
def test_m_by_n_check_agrees_with_tfmot(shape):
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils

    rng = np.random.default_rng(0)
    for trial in range(20):
        values = rng.normal(size=shape).astype(np.float32)
        values[rng.random(shape) < rng.uniform(0.3, 0.8)] = 0
        expected = bool(pruning_utils.is_pruned_m_by_n(tf.constant(values), (2, 4), "C_OUT"))
        assert is_m_by_n_sparse(values, (2, 4), axis=-2) == expected, (shape, trial)


def test_quantize_preserving_sparsity_refuses_an_unstripped_model():
    pruned = prune.prune_model(mobilenet_like(), 0.5, 0, 100)
    with pytest.raises(ValueError, match="strip_pruning"):
        prune.quantize_preserving_sparsity(pruned)
