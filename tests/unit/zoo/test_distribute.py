"""qlab.zoo.distribute without a strategy (nothing changes) and its errors; no training."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.qat import training
from qlab.zoo import distribute


def _tiny_model():
    from qlab.zoo.keras2 import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="tiny")


@pytest.fixture(scope="module")
def one_cpu_strategy():
    from qlab.zoo.keras2 import tf

    return tf.distribute.MirroredStrategy(["/cpu:0"])


def test_without_a_strategy_everything_is_a_no_op():
    model = _tiny_model()
    with distribute.strategy_scope(None) as scope:
        assert scope is None
    assert distribute.replicas(None) == 1
    assert distribute.variables_outside(None, model) == []
    assert distribute.check_built_under(None, model) is model
    assert training.quantize_under(None, lambda m: m, model) is model  # the builder, nothing else


@pytest.mark.parametrize("bad", ["mirrored", 2, object()])
def test_a_strategy_that_is_not_a_tf_distribute_strategy_is_a_type_error(bad):
    with pytest.raises(TypeError, match="strategy must be None or a tf.distribute.Strategy"):
        distribute.strategy_scope(bad)


@pytest.mark.parametrize("bad", [0, -1, 65, 1.5, True, "2"])
def test_logical_cpus_rejects_bad_counts_before_touching_tensorflow(bad):
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 64\]"):
        distribute.logical_cpus(bad)


def test_a_model_built_outside_the_scope_is_refused_by_name(one_cpu_strategy):
    from qlab.zoo.models import compile_for_training

    model = _tiny_model()
    assert distribute.variables_outside(one_cpu_strategy, model) == ["dense/kernel:0", "dense/bias:0"]
    with pytest.raises(ValueError, match="model 'tiny' was not built in strategy.scope.*build_under"):
        compile_for_training(model, 1e-3, strategy=one_cpu_strategy)


def test_quantize_under_puts_every_variable_in_the_scope_and_keeps_the_weights(one_cpu_strategy):
    from qlab.zoo.models import compile_for_training
    from qlab.qat.training import QAT_BUILDERS

    model = _tiny_model()
    qat_model = training.quantize_under(one_cpu_strategy, QAT_BUILDERS["qat_int8"], model)
    assert distribute.variables_outside(one_cpu_strategy, qat_model) == []
    assert any(v.name.endswith("_max:0") for v in qat_model.variables)  # TFMOT's range variables
    kernel = next(v for v in qat_model.get_layer("quant_dense").weights if v.name == "dense/kernel:0")
    np.testing.assert_array_equal(kernel.numpy(), model.get_layer("dense").kernel.numpy())
    compile_for_training(qat_model, 1e-3, strategy=one_cpu_strategy)
    assert qat_model.distribute_strategy is one_cpu_strategy
    assert distribute.variables_outside(one_cpu_strategy, model)  # the float model is left as it was


def test_qat_run_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="unknown QAT variant 'qat_2bit'; valid: qat_int8"):
        training.qat_run(_tiny_model(), *[np.zeros((1, 4))] * 4, variant="qat_2bit")
