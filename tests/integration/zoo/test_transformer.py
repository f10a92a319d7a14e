"""The zoo's transformer trains reproducibly, and the shipped one scores at least 97 % on all test images."""

from __future__ import annotations

import numpy as np

from qlab.zoo import transformer


def test_smoke_training_is_reproducible_and_learns():
    # the run's cached smoke encoder (trained by the same build and train, in this process or another) against
    # one trained here: training it again gives the same weights, bit for bit
    cached = transformer.load_or_train_encoder("smoke", 0, verbose=0)
    again = transformer.build_encoder(seed=0)
    info = transformer.train_encoder(again, "smoke", 0, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(cached.get_weights(), again.get_weights()))
    assert info["test_accuracy"] > 0.2 and info["train_seconds"] > 0  # 4 steps on 512 images: above chance (0.1)


def test_the_shipped_encoder_scores_at_least_97_percent():
    model = transformer.load_or_train_encoder("full", 0, verbose=0)
    _, (x_test, y_test) = transformer.encoder_data("full")
    accuracy = np.mean(np.argmax(model.predict(x_test, batch_size=500, verbose=0), axis=1) == y_test)
    assert len(x_test) == 10_000 and accuracy >= 0.97
