"""``qlab compare --model FILE --data FILE``: a user's model and data, and one-line errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.cli import main

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "mine.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)],
                     name="mine").save(path)
    return path


def save_data(path, image_shape=(8, 8, 1), drop=None):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((20, *image_shape), dtype=np.float32),
              "y_train": rng.integers(0, 3, 20), "x_test": rng.random((10, *image_shape), dtype=np.float32),
              "y_test": rng.integers(0, 3, 10)}
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


def run_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("qlab: error: ") and err.count("\n") == 1, err  # one line
    assert "Traceback" not in err
    return err


def test_missing_key_is_one_line(capsys, model_file, tmp_path):
    data = save_data(tmp_path / "d.npz", drop="y_test")
    err = run_error(capsys, ["compare", "--model", str(model_file), "--data", str(data)])
    assert "has no y_test" in err and "x_train, y_train, x_test, y_test" in err


def test_shape_that_does_not_fit_the_model_is_one_line(capsys, model_file, tmp_path):
    data = save_data(tmp_path / "d.npz", image_shape=(6, 6, 1))
    err = run_error(capsys, ["compare", "--model", str(model_file), "--data", str(data),
                             "--variants", "float32"])
    assert "x_train examples have shape (6, 6, 1)" in err and "(8, 8, 1)" in err


@pytest.mark.parametrize("name", ["broken.keras", "broken.h5"])
def test_unreadable_model_file_is_one_line(capsys, tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not a model")
    data = save_data(tmp_path / "d.npz")
    err = run_error(capsys, ["compare", "--model", str(tmp_path / name), "--data", str(data)])
    assert name in err and "could not load" in err


def test_unreadable_data_file_is_one_line(capsys, model_file, tmp_path):
    (tmp_path / "d.npz").write_bytes(b"garbage")
    err = run_error(capsys, ["compare", "--model", str(model_file), "--data", str(tmp_path / "d.npz")])
    assert "is not a readable .npz" in err


def test_missing_files_are_one_line(capsys, model_file, tmp_path):
    err = run_error(capsys, ["compare", "--model", str(tmp_path / "nope.keras"), "--data",
                             str(save_data(tmp_path / "d.npz"))])
    assert "no model at" in err
    err = run_error(capsys, ["compare", "--model", str(model_file), "--data", str(tmp_path / "no.npz")])
    assert "no data file at" in err


def test_model_file_needs_data_and_data_needs_a_model_file(capsys, model_file):
    assert "give its data too" in run_error(capsys, ["compare", "--model", str(model_file)])
    assert "--data goes with a model file" in run_error(
        capsys, ["compare", "--model", "mnist_cnn", "--data", "d.npz"])
    assert "either zoo names or one model file" in run_error(
        capsys, ["compare", "--model", "mnist_cnn", "--model", str(model_file), "--data", "d.npz"])


def test_zoo_names_still_mean_the_zoo(capsys):
    assert "unknown model(s) ['nope']" in run_error(capsys, ["compare", "--model", "nope"])
