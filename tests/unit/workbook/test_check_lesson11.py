"""Lesson 11's checks, on the zoo's encoder as built (untrained: the checks read files and kernels, not accuracy).

The mixed-bit recipe is graded by the file the LiteRT Quantizer makes with it; the per-channel ranges by the scales
the Quantizer stores for the same kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade

FEED_FORWARD = r".*_ff[12]_1/.*"


@pytest.fixture(scope="module")
def lesson():
    from qlab.conversion.converter import convert
    from qlab.zoo.transformer import build_encoder

    model = build_encoder(seed=0)
    x = np.random.default_rng(0).uniform(size=(32, 16, 49)).astype(np.float32)
    kernels = {w.path: np.asarray(w) for w in model.weights}
    return {"model": model, "float_file": convert(model, "float32"), "x_test": x, "y_test": np.arange(32) % 10,
            "query": kernels["block0_attention/query/kernel"],
            "output": kernels["block0_attention/attention_output/kernel"]}


def recipe(float_file, *configs):
    """The recipe a Quantizer holds after ``add_dynamic_config(regex, FULLY_CONNECTED, bits)`` per ``(regex, bits)``."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(float_file)
    for regex, bits in configs:
        q.add_dynamic_config(regex, qtyping.TFLOperationName.FULLY_CONNECTED, bits)
    return q.get_quantization_recipe()


def keep_attention(lesson, answer):
    return grade("11.keep_attention", answer, float_file=lesson["float_file"], x_test=lesson["x_test"],
                 y_test=lesson["y_test"], low_bits=2)


def bounds(lesson, query, output):
    return grade("11.channel_bounds", query, output, model=lesson["model"], float_file=lesson["float_file"])


def test_the_blanks_are_not_done(lesson):
    assert keep_attention(lesson, ...).status == "not done"
    assert keep_attention(lesson, []).status == "not done"  # a fresh Quantizer's recipe: nothing added yet
    assert bounds(lesson, ..., ...).status == "not done"


def test_the_repair_recipe_is_correct(lesson, capsys):
    outcome = keep_attention(lesson, recipe(lesson["float_file"], (".*", 8), (FEED_FORWARD, 2)))
    assert outcome.status == "correct", outcome.message
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("configs, hint", [
    (((".*", 8), (r".*block.*", 2)), "the attention projections are stored as ['INT2']"),  # everything in the blocks
    (((FEED_FORWARD, 2), (".*", 8)), "later configs win"),  # the low-bit config first, replaced by the 8-bit one
    (((".*", 8), (r".*_ff1_1/.*", 2)), "both feed-forward layers"),  # ff1 only
    (((FEED_FORWARD, 2),), "still float32"),  # no 8-bit config for the rest
    (((".*", 8), (FEED_FORWARD, 4)), "not INT2"),  # the wrong bit width
])
def test_each_recipe_mistake_gets_a_hint_naming_it(lesson, configs, hint):
    outcome = keep_attention(lesson, recipe(lesson["float_file"], *configs))
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message


def test_the_ranges_of_each_output_channel_are_correct(lesson):
    outcome = bounds(lesson, np.abs(lesson["query"]).max(axis=0), np.abs(lesson["output"]).max(axis=(0, 1)))
    assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("mistake, hint", [
    (lambda q, o: (np.abs(q).max(axis=-1), np.abs(o).max(axis=(0, 1))), "reduce over the summed axes"),
    (lambda q, o: (np.abs(q).max(axis=0), np.abs(o).max(axis=-1)), "my_output_bounds has shape (4, 16)"),
    (lambda q, o: (np.abs(q).max(), np.abs(o).max(axis=(0, 1))), "one number for the whole kernel"),
    (lambda q, o: (q.max(axis=0), np.abs(o).max(axis=(0, 1))), "the largest |w|"),  # no absolute value
    (lambda q, o: (np.abs(q).max(axis=0), np.abs(o).max(axis=(0, 1)) * 127), "implies another"),  # scaled
])
def test_each_range_mistake_gets_a_hint_without_the_answer(lesson, mistake, hint):
    outcome = bounds(lesson, *mistake(lesson["query"], lesson["output"]))
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
    assert "np.max" not in outcome.message and "axis=" not in outcome.message
