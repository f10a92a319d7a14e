import random

import numpy as np
import pytest

import qlab


def _draws():
    from qlab.zoo.keras2 import tf

    return random.random(), np.random.rand(), float(tf.random.uniform(()))


def test_set_seed_makes_python_numpy_and_tensorflow_repeatable():
    qlab.set_seed(123)
    first = _draws()
    qlab.set_seed(123)
    assert _draws() == first
    qlab.set_seed(124)
    assert _draws() != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True, None])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError), match="seed"):
        qlab.set_seed(bad)
