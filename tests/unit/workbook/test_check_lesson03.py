"""qlab.check for lesson 03: the float16 converter settings and a LiteRT run, on a tiny Keras model.

The settings' hints need no conversion; a correct answer is converted (a tiny Dense model: a second or
two) and run in LiteRT.
"""

from __future__ import annotations

import numpy as np
import pytest

from qlab.workbook.check import grade

pytestmark = pytest.mark.slow  # TensorFlow's converter and LiteRT, on a tiny model


@pytest.fixture(scope="module")
def tiny():
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    x_test = np.random.default_rng(0).uniform(0, 1, (12, 28, 28, 1)).astype(np.float32)
    return {"model": model, "x_test": x_test}


def converter_for(model, **settings):
    from qlab.zoo.keras2 import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    for name, value in settings.items():
        if name == "supported_types":
            converter.target_spec.supported_types = value
        else:
            setattr(converter, name, value)
    return converter


def test_the_float16_settings_are_graded_by_the_converters_file(tiny):
    from qlab.zoo.keras2 import tf

    assert grade("03.float16", converter_for(tiny["model"]), **tiny).status == "not done"
    outcome = grade("03.float16", converter_for(tiny["model"], optimizations=[tf.lite.Optimize.DEFAULT],
                                                supported_types=[tf.float16]), **tiny)
    assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("settings, hint", [
    ({"optimizations": ["DEFAULT"]}, "dynamic range"),
    ({"supported_types": ["float16"]}, "leaves every weight in float32"),
    ({"optimizations": ["DEFAULT"], "supported_types": ["int8"]}, "float16 only"),
    ({"optimizations": ["DEFAULT"], "supported_types": "float16"}, "takes a list"),
    ({"optimizations": "DEFAULT", "supported_types": ["float16"]}, "takes a list"),
])
def test_each_settings_mistake_gets_its_hint(tiny, settings, hint):
    from qlab.zoo.keras2 import tf

    def value(v):
        if isinstance(v, list):
            return [value(item) for item in v]
        return tf.lite.Optimize.DEFAULT if v == "DEFAULT" else getattr(tf, v)

    outcome = grade("03.float16", converter_for(tiny["model"], **{k: value(v) for k, v in settings.items()}), **tiny)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message


def run_tflite(model_bytes, images):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    scores = []
    for image in images:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        scores.append(interpreter.get_tensor(output_index)[0])
    return np.array(scores)


def blank(model_bytes, images):
    """The exercise's blank."""
    # YOUR CODE STARTS HERE
    ...
    # YOUR CODE ENDS HERE


def test_a_litert_run_is_graded_against_qlabs_run_of_both_files(tiny):
    assert grade("03.run_tflite", blank, **tiny).status == "not done"
    outcome = grade("03.run_tflite", run_tflite, **tiny)
    assert outcome.status == "correct", outcome.message


@pytest.mark.parametrize("answer, hint", [
    (lambda model_bytes, images: run_tflite(model_bytes, images)[:, None], "batch axis of one"),
    (lambda model_bytes, images: run_tflite(model_bytes, images)[-1], "scores of one image"),
    (lambda model_bytes, images: np.tile(run_tflite(model_bytes, images[:1]), (len(images), 1)), "the same"),
    (lambda model_bytes, images: run_tflite(model_bytes, images * 255), "image 0"),
    (lambda model_bytes, images: run_tflite(model_bytes, images)[:, :5], "one row of 10 scores"),
    (lambda model_bytes, images: [str(s) for s in run_tflite(model_bytes, images)], "numpy array of scores"),
    (lambda model_bytes, images: [].append(images), "return statement"),  # code, but returns None
])
def test_each_run_mistake_gets_its_hint(tiny, answer, hint):
    outcome = grade("03.run_tflite", answer, **tiny)
    assert outcome.status == "wrong" and hint in outcome.message, outcome.message
