"""Bad user data through compare_keras_model with a real tf_keras model: a clear error before any work."""

from __future__ import annotations

import numpy as np
import pytest

import qlab
from qlab.workbook import pipeline
from qlab.workbook.user_data import KNOWN_MODELS, model_signature


@pytest.fixture(scope="module")
def user_model():
    """A small untrained tf_keras classifier that is not in the zoo (the checks never predict)."""
    from qlab.zoo.keras2 import keras

    qlab.set_seed(0)
    return keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)], name="user_cnn")


def user_data(n_train=64, n_test=32):
    """``[x_train, y_train, x_test, y_test]``: float32 images in [0, 1] and labels 0..9."""
    rng = np.random.default_rng(0)
    return [rng.random((n_train, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n_train),
            rng.random((n_test, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n_test)]


@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly if compare_keras_model converts or measures anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("compare_keras_model started work before the data was checked")

    monkeypatch.setattr(pipeline, "convert", refuse)
    monkeypatch.setattr(pipeline, "measure_variants", refuse)


def nan_train(a):
    a[0] = np.full_like(a[0], np.nan)  # the case: training data full of NaN


BAD_DATA = {
    "NaN x_train": (nan_train, r"^x_train holds 50176 NaN and 0 inf value\(s\) in 64 of 64 image\(s\)"),
    "labels 10..19": (lambda a: a.__setitem__(3, np.arange(32) % 10 + 10),  # the case: reported 0% accuracy
                      r"^y_test holds labels 10\.\.19 \(32 of 32 outside\) but the model has 10 outputs "
                      r"\(classes 0\.\.9\); valid labels are 0\.\.9"),
    "inf x_test": (lambda a: a[2].__setitem__((5, 0, 0, 0), -np.inf), r"^x_test holds 0 NaN and 1 inf"),
    "uint8 x_train": (lambda a: a.__setitem__(0, (a[0] * 255).astype(np.uint8)),
                      r"^x_train must be float32 \(as the model sees it\), got uint8"),
    "wrong shape": (lambda a: a.__setitem__(2, a[2][:, :, :, 0]),
                    r"^x_test examples have shape \(28, 28\), but the model 'user_cnn' expects \(28, 28, 1\)"),
    "x_test in 0..255": (lambda a: a.__setitem__(2, a[2] * 255), r"^x_test values span .*, far outside x_train's"),
    "float labels": (lambda a: a.__setitem__(1, a[1].astype(np.float32)),
                     r"^y_train must be integer class labels .*astype\('int64'\)$"),
    "labels of another length": (lambda a: a.__setitem__(3, a[3][:10]),
                                 r"^y_test must be integer class labels of shape \(32,\)"),
    "empty x_train": (lambda a: (a.__setitem__(0, a[0][:0]), a.__setitem__(1, a[1][:0])), r"^x_train is empty"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_any_work(case, user_model, no_work):
    change, pattern = BAD_DATA[case]
    data = user_data()
    change(data)
    with pytest.raises(ValueError, match=pattern) as raised:
        qlab.compare_keras_model(user_model, ((data[0], data[1]), (data[2], data[3])), variants="all")
    assert "\n" not in str(raised.value)


def _models_that_are_not_one_score_per_class():
    from qlab.zoo.keras2 import keras

    layers = keras.layers
    image = keras.Input((28, 28, 1))
    return {
        "one sigmoid": (keras.Sequential([image, layers.Flatten(), layers.Dense(1, activation="sigmoid")],
                                         name="binary"),
                        r"^model 'binary' outputs 1 score\(s\) per image \(shape \(None, 1\)\)"),
        "a score map": (keras.Sequential([image, layers.Conv2D(10, 3)], name="dense_map"),
                        r"^model 'dense_map' outputs shape \(None, 26, 26, 10\); qlab needs one score per class"),
        "two heads": (keras.Model(image, [layers.Dense(10)(layers.Flatten()(image)),
                                          layers.Dense(4)(layers.Flatten()(image))], name="two_heads"),
                      r"^model 'two_heads' has 2 outputs; qlab compares models with one image output"),
    }


def test_a_model_that_is_not_one_score_per_class_is_refused(no_work):
    data = user_data()
    for name, (model, pattern) in _models_that_are_not_one_score_per_class().items():
        with pytest.raises(ValueError, match=pattern):
            qlab.compare_keras_model(model, ((data[0], data[1]), (data[2], data[3])))


def test_a_zoo_model_names_the_range_it_was_trained_on(no_work):
    from qlab.zoo.models import MODELS, build_model, input_shape_for

    for name in MODELS:  # the names check_dataset knows must be the ones the zoo really builds
        assert KNOWN_MODELS[build_model(name).name] == (input_shape_for(name), 10)
    data = user_data()
    with pytest.raises(ValueError, match=r"^x_train values span .*\.\.25\d(\.\d+)?, but the model was trained on "
                                         r"values in \[0, 1\] \(qlab's 'mnist_cnn' learned from MNIST scaled "
                                         r"by qlab.mnist_for\); scale x_train the same way, e\.g\. divide"):
        qlab.compare_keras_model(build_model("mnist_cnn"), ((data[0] * 255, data[1]), (data[2], data[3])))


def test_a_stated_input_range_is_enforced(user_model, no_work):
    data = user_data()
    with pytest.raises(ValueError, match=r"^x_test values span .* \[-1, 0\.5\] \(input_range\)"):
        qlab.compare_keras_model(user_model, ((data[0] - 0.5, data[1]), (data[2], data[3])),
                                 input_range=(-1, 0.5))


@pytest.mark.parametrize("variant", ["pruned_int8", "qat_int8"])
def test_a_bad_fine_tune_sample_count_is_refused_before_any_work(variant, user_model, no_work):
    data = user_data()
    with pytest.raises(ValueError, match=r"^fine_tune_samples must be an integer in \[1, \d+\], got 0$"):
        qlab.compare_keras_model(user_model, ((data[0], data[1]), (data[2], data[3])),
                                 variants=["float32", variant], fine_tune_samples=0)


def test_variants_that_fine_tune_nothing_need_no_sample_count(user_model, tmp_path):
    from qlab.conversion.converter import export_once

    x_train, y_train, x_test, y_test = user_data()
    variant_model = pipeline._user_variant_model(user_model, user_model, ((x_train, y_train), (x_test, y_test)),
                                                 calibration_samples=16, fine_tune_samples=None, seed=0, verbose=0,
                                                 exported=export_once(user_model, str(tmp_path)))
    assert variant_model("float32")[0][4:8] == b"TFL3"
    for variant in ("pruned_int8", "qat_int8"):  # a fine-tune that would need the count says so, at its start
        with pytest.raises(ValueError, match=r"^fine_tune_samples must be an integer in \[1, \d+\], got None$"):
            variant_model(variant)


def test_good_data_from_an_npz_goes_through(user_model, tmp_path):
    x_train, y_train, x_test, y_test = user_data()
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    with np.load(tmp_path / "data.npz") as data:
        result = qlab.compare_keras_model(user_model, data, variants="float32", latency=False, save=False)
    float_top1 = user_model.predict(x_test, verbose=0).argmax(axis=1)
    assert result.table["accuracy"].tolist() == [pytest.approx(np.mean(float_top1 == y_test))]


def test_keras3_models_show_their_shapes_to_the_checks():
    import keras as keras3  # Keras 3 is installed beside tf_keras

    k3 = keras3.Sequential([keras3.layers.Input((28, 28, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
    assert model_signature(k3) == ((28, 28, 1), 10)
