"""The zoo's Keras 3 transformer: patch tokens, the architecture and its cache key."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.zoo import transformer


def test_patches_are_7x7_blocks_read_row_by_row():
    images = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    tokens = transformer.to_patches(images[..., None])
    assert tokens.shape == (2, 16, 49) and tokens.dtype == np.float32
    assert np.array_equal(tokens[1, 4 * 2 + 3], images[1, 14:21, 21:28].reshape(49))  # patch row 2, column 3


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 27), np.float32), "shape"),
    (np.zeros((2, 28, 28, 3), np.float32), "shape"),
    (np.full((1, 28, 28), 255.0, np.float32), r"\[0, 1\]"),
    (np.zeros((1, 28, 28), np.uint8), r"\[0, 1\]"),
    (np.full((1, 28, 28), np.nan, np.float32), "NaN"),
])
def test_bad_images_are_named(images, message):
    with pytest.raises(ValueError, match=message):
        transformer.to_patches(images)


def test_the_encoder_is_a_bert_block_stack_on_patch_tokens():
    model = transformer.build_encoder(seed=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("MultiHeadAttention") == transformer.BLOCKS == 2
    assert kinds.count("LayerNormalization") == 2 * transformer.BLOCKS + 1
    assert model.get_layer("block0_ff1").get_config()["activation"] == "gelu"
    assert model.count_params() == 71_946
    assert model.predict(np.zeros((3, 16, 49), np.float32), verbose=0).shape == (3, 10)
    again = transformer.build_encoder(seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


def test_the_cache_key_holds_size_seed_and_budget():
    full, smoke, other_seed = (transformer.encoder_config(*a) for a in (("full", 0), ("smoke", 0), ("full", 1)))
    assert len({str(full), str(smoke), str(other_seed)}) == 3
    assert full["budget"]["epochs"] == transformer.BUDGETS["full"].epochs and full["keras"] == "3"
    with pytest.raises(ValueError, match="huge"):
        transformer.encoder_config("huge")
