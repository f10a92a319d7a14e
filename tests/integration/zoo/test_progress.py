"""The training progress bar: shown at verbose=0, counts every step, and leaves training unchanged."""

import io

import numpy as np
import pytest

from qlab.zoo import progress


@pytest.fixture
def lines(monkeypatch):
    """Progress lines as ``qlab run``'s kernels print them, written to a StringIO."""
    terminal = io.StringIO()
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setenv(progress.LINES_ENV, "1")
    monkeypatch.setattr(progress, "_kernel_terminal", lambda: terminal)
    return terminal


def _fit(callbacks, seed=0, verbose=0):
    """Weights of a tiny model after 2 epochs x 4 batches; its Dropout draws random numbers."""
    from qlab.zoo.keras2 import keras
    from qlab.zoo.seed import set_seed

    set_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    data = np.random.default_rng(0)
    x, y = data.normal(size=(64, 4)).astype(np.float32), data.integers(0, 3, 64)
    set_seed(seed)
    model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=verbose, callbacks=callbacks)
    return model.get_weights()


def test_the_bar_counts_every_step_at_verbose_0(lines, capsys):
    _fit(progress.fit_progress("training tiny (smoke)"), verbose=0)
    printed = lines.getvalue().splitlines()
    assert "8/8" in printed[-1] and "100%" in printed[-1]
    assert "epoch 2/2, loss " in printed[-1] and "accuracy " in printed[-1]
    assert all(line.startswith("training tiny (smoke):") for line in printed)
    err = capsys.readouterr().err  # the terminal bar (tqdm.auto outside a notebook)
    assert "training tiny (smoke)" in err and "8/8" in err


def test_the_bar_does_not_change_training(monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    without = _fit([])
    with_bar = _fit(progress.fit_progress("training tiny"))
    other_seed = _fit([], seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(without, with_bar))
    assert not all(np.array_equal(a, b) for a, b in zip(without, other_seed))  # the check can fail


def test_qlab_progress_0_hides_the_training_bar(monkeypatch, capsys):
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    _fit(progress.fit_progress("training tiny"))
    assert "training tiny" not in capsys.readouterr().err


def test_zoo_training_shows_what_it_trains(lines):
    from qlab.zoo.models import build_model, train_model

    train_model(build_model("mnist_cnn", seed=0), "mnist_cnn", "smoke", seed=0, verbose=0)
    last = lines.getvalue().splitlines()[-1]
    assert last.startswith("training mnist_cnn (smoke):") and "8/8" in last and "epoch 1/1" in last
