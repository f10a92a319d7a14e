"""The user-data checks of compare_keras_model, on numpy arrays and a stub model (no TensorFlow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qlab.workbook.user_data import check_dataset, load_dataset_file, model_signature, unpack_data


def stub_model(name="user_cnn", input_shape=(None, 28, 28, 1), output_shape=(None, 10)):
    """What check_dataset reads of a Keras model: its name and shapes."""
    return SimpleNamespace(name=name, input_shape=input_shape, output_shape=output_shape)


def arrays(n_train=12, n_test=8, shape=(28, 28, 1), seed=0):
    """Valid ``[x_train, y_train, x_test, y_test]``: float32 images in [0, 1], labels 0..9."""
    rng = np.random.default_rng(seed)
    return [rng.random((n_train, *shape), dtype=np.float32), rng.integers(0, 10, n_train),
            rng.random((n_test, *shape), dtype=np.float32), rng.integers(0, 10, n_test)]


def nested(x_train, y_train, x_test, y_test):
    return (x_train, y_train), (x_test, y_test)


def with_value(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def test_valid_data_passes_as_the_same_arrays():
    x, y, xt, yt = arrays()
    (x2, y2), (xt2, yt2) = check_dataset(stub_model(), nested(x, y, xt, yt))
    assert x2 is x and y2 is y and xt2 is xt and yt2 is yt


def test_lists_and_a_mapping_such_as_an_npz_are_accepted():
    x, y, xt, yt = arrays()
    (x2, y2), _ = check_dataset(stub_model(), ((x, y.tolist()), (xt, yt)))
    assert isinstance(y2, np.ndarray) and y2.tolist() == y.tolist()
    mapping = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt, "extra": 1}
    assert unpack_data(mapping) == (x, y, xt, yt)


def test_labels_outside_the_models_classes_are_named_with_the_valid_ones():
    """The issue's case: labels 10..19 for a 10-class model used to give 0% accuracy."""
    x, y, xt, _ = arrays(n_test=10)
    with pytest.raises(ValueError) as error:
        check_dataset(stub_model(), nested(x, y, xt, np.arange(10, 20)))
    assert str(error.value) == ("y_test holds labels 10..19 (10 of 10 outside) but the model has 10 outputs "
                                "(classes 0..9); valid labels are 0..9; if they are numbered from 10, "
                                "subtract 10")


def test_nan_images_are_counted_and_located():
    """The issue's case: x_train full of NaN used to be quantized without a word."""
    x, y, xt, yt = arrays()
    x[3] = np.nan
    with pytest.raises(ValueError) as error:
        check_dataset(stub_model(), nested(x, y, xt, yt))
    assert str(error.value) == ("x_train holds 784 NaN and 0 inf value(s) in 1 of 12 image(s) (first: "
                                "index 3); every value must be finite - drop or repair those images")


def test_zoo_model_names_its_0_1_training_range():
    x, y, xt, yt = arrays()
    model = stub_model("mnist_cnn")
    with pytest.raises(ValueError) as error:
        check_dataset(model, nested(x * 255, y, xt * 255, yt))
    message = str(error.value)
    assert message.startswith("x_train values span ") and "trained on values in [0, 1]" in message
    assert "'mnist_cnn' learned from MNIST scaled by qlab.mnist_for" in message
    assert message.endswith("e.g. divide 0..255 pixels by 255")
    # [0, 1] data for it passes, and a user model that only shares the name (not the shape) is not held to [0, 1]
    check_dataset(model, nested(x, y, xt, yt))
    x3, y3, xt3, yt3 = arrays(shape=(32, 32, 3))
    check_dataset(stub_model("mnist_cnn", (None, 32, 32, 3)), nested(x3 * 255, y3, xt3 * 255, yt3))


def test_mobilenet_zoo_names_are_known():
    x, y, xt, yt = arrays(shape=(32, 32, 1))
    for name in ("mobilenet_0.50_32", "mobilenetv2_1.00_32"):
        with pytest.raises(ValueError, match=r"^x_test values span -1\.\.[0-9.]+, but the model was trained "
                                             r"on values in \[0, 1\]"):
            check_dataset(stub_model(name, (None, 32, 32, 1)), nested(x, y, with_value(xt, (0, 0, 0, 0), -1), yt))


def test_a_stated_input_range_is_enforced_and_checked():
    x, y, xt, yt = arrays()
    check_dataset(stub_model(), nested(x * 2 - 1, y, xt * 2 - 1, yt), input_range=(-1, 1))
    with pytest.raises(ValueError, match=r"x_train values span .*, but the model was trained on values "
                                         r"in \[-1, 1\] \(input_range\); scale x_train the same way$"):
        check_dataset(stub_model(), nested(x * 3, y, xt, yt), input_range=(-1, 1))
    for bad in ((1, 0), (0, np.inf), 5, ("a", "b")):
        with pytest.raises(ValueError, match="input_range must be"):
            check_dataset(stub_model(), nested(x, y, xt, yt), input_range=bad)


def test_x_test_scaled_unlike_x_train_is_caught_for_a_user_model():
    x, y, xt, yt = arrays()
    with pytest.raises(ValueError, match=r"x_test values span .*\.\.2.*, far outside x_train's "
                                         r"[0-9.e-]+\.\.[0-9.]+ \(more than 50% of its width beyond it\)"):
        check_dataset(stub_model(), nested(x, y, xt * 255, yt))
    # a little beyond (as a new test image may be) is fine
    check_dataset(stub_model(), nested(x, y, with_value(xt, (0, 0, 0, 0), 1.3), yt))


CASES = {
    # name: (change to the valid [x_train, y_train, x_test, y_test], error, message pattern)
    "inf in x_test": (lambda a: a.__setitem__(2, with_value(a[2], (1, 5), np.inf)), ValueError,
                      r"^x_test holds 0 NaN and 28 inf value\(s\) in 1 of 8 image\(s\) \(first: index 1\)"),
    "negative labels": (lambda a: a.__setitem__(1, np.arange(12) % 10 - 1), ValueError,
                        r"^y_train holds labels -1\.\.8 \(2 of 12 outside\) but the model has 10 outputs "
                        r"\(classes 0\.\.9\); valid labels are 0\.\.9$"),
    "labels 1..10": (lambda a: a.__setitem__(3, np.arange(1, 9) + 2), ValueError,
                     r"^y_test holds labels 3\.\.10 \(1 of 8 outside\).*subtract 3$"),
    "float labels": (lambda a: a.__setitem__(1, a[1].astype(np.float64)), ValueError,
                     r"^y_train must be integer class labels of shape \(12,\), one per image, got float64 "
                     r"\(12,\); convert it with y_train\.astype\('int64'\)$"),
    "column of float labels": (lambda a: a.__setitem__(1, a[1][:, None] * 1.0), ValueError,
                               r"^y_train must be integer class labels .* got float64 \(12, 1\); flatten it with "
                               r"y_train\.reshape\(-1\); convert it with y_train\.astype\('int64'\)$"),
    "fractional labels": (lambda a: a.__setitem__(1, a[1] + 0.5), ValueError,
                          r"^y_train must be integer class labels .* got float64 \(12,\)$"),
    "bool labels": (lambda a: a.__setitem__(1, a[1] > 4), ValueError,
                    r"^y_train must be integer class labels .* got bool \(12,\)$"),
    "string labels": (lambda a: a.__setitem__(3, np.array(list("abcdefgh"))), TypeError,
                      r"^y_test must be a numeric array, got dtype <U1"),
    "one-hot labels": (lambda a: a.__setitem__(3, np.eye(10)[a[3]]), ValueError,
                       r"^y_test has shape \(8, 10\), like one-hot labels or scores; .*y_test\.argmax\(axis=1\)$"),
    "too few labels": (lambda a: a.__setitem__(1, a[1][:5]), ValueError,
                       r"^y_train must be integer class labels of shape \(12,\), one per image, got int64 \(5,\)$"),
    "float64 images": (lambda a: a.__setitem__(0, a[0].astype(np.float64)), ValueError,
                       r"^x_train must be float32 \(as the model sees it\), got float64; convert it with "
                       r"x_train\.astype\('float32'\)"),
    "uint8 images": (lambda a: a.__setitem__(2, (a[2] * 255).astype(np.uint8)), ValueError,
                     r"^x_test must be float32 .* got uint8"),
    "object images": (lambda a: a.__setitem__(0, np.array([None] * 12)), TypeError,
                      r"^x_train must be a numeric array, got dtype object"),
    "ragged images": (lambda a: a.__setitem__(0, [[1.0, 2.0], [3.0]]), TypeError,
                      r"^x_train must be a numeric array, got list that numpy cannot turn into one"),
    "wrong image shape": (lambda a: a.__setitem__(0, a[0][:, :20]), ValueError,
                          r"^x_train examples have shape \(20, 28, 1\), but the model 'user_cnn' expects "
                          r"\(28, 28, 1\) \(None: any size\)$"),
    "no channel axis": (lambda a: a.__setitem__(2, a[2][..., 0]), ValueError,
                        r"^x_test examples have shape \(28, 28\).*; add the channel axis with x_test\[\.\.\., None\]$"),
    "empty x_train": (lambda a: a.__setitem__(0, a[0][:0]), ValueError,
                      r"^x_train is empty \(shape \(0, 28, 28, 1\)\); it needs at least one example$"),
    "empty x_test": (lambda a: (a.__setitem__(2, a[2][:0]), a.__setitem__(3, a[3][:0])), ValueError,
                     r"^x_test is empty"),
    "scalar x_test": (lambda a: a.__setitem__(2, np.float32(0.5)), ValueError,
                      r"^x_test must be an array of images, one per row, got the single value 0\.5$"),
    "constant x_train": (lambda a: a.__setitem__(0, np.zeros_like(a[0])), ValueError,
                         r"^x_train holds the single value 0 everywhere"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_bad_array_gets_a_one_line_error_naming_it(case):
    change, error, pattern = CASES[case]
    data = arrays()
    change(data)
    with pytest.raises(error, match=pattern) as raised:
        check_dataset(stub_model(), nested(*data))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("output_shape, pattern", [
    ((None, 7, 7, 10), r"^model 'user_cnn' outputs shape \(None, 7, 7, 10\); qlab needs one score per class"),
    ((None, 1), r"^model 'user_cnn' outputs 1 score\(s\) per image \(shape \(None, 1\)\); accuracy needs one "
                r"score per class, at least 2"),
    ((None, None), r"^model 'user_cnn' outputs None score\(s\) per image"),
    ([(None, 10), (None, 4)], r"^model 'user_cnn' has 2 outputs; qlab compares models with one image output"),
])
def test_a_model_that_is_not_one_score_per_class_is_refused(output_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_dataset(stub_model(output_shape=output_shape), nested(*arrays()))


def test_model_shapes_come_from_inputs_and_outputs_when_there_is_no_shape_attribute():
    tensor = lambda *shape: SimpleNamespace(shape=shape)  # noqa: E731
    keras3_like = SimpleNamespace(name="k3", inputs=[tensor(None, 28, 28, 1)], outputs=[tensor(None, 10)])
    assert model_signature(keras3_like) == ((28, 28, 1), 10)
    with pytest.raises(TypeError, match="model must be a built Keras classifier with an input shape, got str"):
        check_dataset("my_model.keras", nested(*arrays()))


def test_free_input_sizes_accept_any_image_size():
    x, y, xt, yt = arrays(shape=(20, 24, 1))
    check_dataset(stub_model(input_shape=(None, None, None, 1)), nested(x, y, xt, yt))


def test_labels_are_checked_against_the_models_own_class_count():
    x, y, xt, yt = arrays()
    check_dataset(stub_model(output_shape=(None, 3)), nested(x, y % 3, xt, yt % 3))
    with pytest.raises(ValueError, match=r"y_train holds labels 0\.\.9 .*model has 3 outputs \(classes 0\.\.2\)"):
        check_dataset(stub_model(output_shape=(None, 3)), nested(x, np.arange(12) % 10, xt, yt % 3))


@pytest.mark.parametrize("data, pattern", [
    ((1, 2), r"^data must be \(\(x_train, y_train\), \(x_test, y_test\)\) or a mapping .* got tuple$"),
    (None, r"got NoneType$"),
    ({"x_train": 0, "y_train": 0, "x_test": 0}, r"^data has no y_test \(it has x_train, y_train, x_test\); "
                                               r"it needs the arrays x_train, y_train, x_test, y_test$"),
])
def test_data_of_the_wrong_form_is_named(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_dataset(stub_model(), data)


def test_a_data_file_is_read_or_named_in_a_one_line_error(tmp_path):
    x, y, xt, yt = arrays()
    np.savez(tmp_path / "good.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    (x2, y2), (xt2, yt2) = load_dataset_file(tmp_path / "good.npz")
    assert np.array_equal(x2, x) and np.array_equal(y2, y) and np.array_equal(xt2, xt) and np.array_equal(yt2, yt)
    np.savez(tmp_path / "partial.npz", x_train=x, y_train=y, x_test=xt)
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "objects.npz", x_train=np.array([None, 1], dtype=object), y_train=y, x_test=xt, y_test=yt)
    for name, pattern in [("partial.npz", r"partial\.npz has no y_test \(it has x_train, y_train, x_test\); "
                                          r"it needs the arrays x_train, y_train, x_test, y_test$"),
                          ("one.npy", r"one\.npy is not a readable \.npz of arrays \(it holds one array"),
                          ("text.npz", r"text\.npz is not a readable \.npz of arrays \(This file contains pickled"),
                          ("objects.npz", r"objects\.npz is not a readable \.npz of arrays \(Object arrays cannot "
                                          r"be loaded when allow_pickle=False\); save one with np\.savez")]:
        with pytest.raises(ValueError, match=pattern) as raised:
            load_dataset_file(tmp_path / name)
        assert "\n" not in str(raised.value)
    with pytest.raises(FileNotFoundError, match=r"no data file at .*missing\.npz; give a \.npz holding x_train"):
        load_dataset_file(tmp_path / "missing.npz")
