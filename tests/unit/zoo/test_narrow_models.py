"""The narrow zoo models (qlab.zoo.models.NARROW_MODELS): found by name, never in "all"."""

from __future__ import annotations

import pandas as pd
import pytest

from qlab.cli import main
from qlab.workbook.pipeline import check_models
from qlab.zoo.models import MODELS, NARROW_MODELS, build_model, get_spec, known_models, training_config

NARROW = "mobilenet_v2_035"


def test_mobilenet_v2_035_is_mobilenet_v2_at_alpha_035_with_the_same_recipe():
    spec, wide = get_spec(NARROW), get_spec("mobilenet_v2")
    assert spec is NARROW_MODELS[NARROW] and spec.name == NARROW
    assert spec.options == {"alpha": 0.35, "bn_momentum": 0.9} and wide.options["alpha"] == 1.0
    assert (spec.input_size, spec.full, spec.smoke) == (wide.input_size, wide.full, wide.smoke)
    assert training_config(NARROW)["options"]["alpha"] == 0.35
    assert training_config(NARROW)["model"] == NARROW


def test_it_is_apart_from_the_models_every_lesson_iterates_over():
    assert NARROW not in MODELS and list(MODELS) == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2"]
    assert known_models() == [*MODELS, NARROW]
    assert NARROW not in check_models("all")


def test_compare_accepts_it_when_named_and_an_unknown_name_still_fails():
    assert check_models(NARROW) == [NARROW]
    assert check_models(["mnist_cnn", NARROW, "patch_encoder"]) == ["mnist_cnn", NARROW, "patch_encoder"]
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['mobilenet_v2_036'\].*mobilenet_v2_035"):
        check_models("mobilenet_v2_036")
    with pytest.raises(ValueError, match=r"unknown model 'mobilenet_v3'; valid models: .*mobilenet_v2_035"):
        get_spec("mobilenet_v3")


def test_the_built_model_is_narrow():
    model = build_model(NARROW)
    # keras.applications rounds 32 * alpha up to a multiple of 8: 16 stem filters instead of 32
    assert model.get_layer("Conv1").filters == 16
    assert model.count_params() == 422_730  # mobilenet_v2 at alpha 1.0: 2,270,218
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 10)


def test_qlab_compare_passes_it_on_when_named(monkeypatch, capsys):
    from qlab.workbook import pipeline

    seen = []

    def fake_compare(models, variants, size, seed, latency, calibration_samples, verbose):
        seen.append((models, variants))
        return pipeline.ComparisonResult(pd.DataFrame(columns=pipeline.COLUMNS), {}, {"size": size, "seed": seed})

    monkeypatch.setattr(pipeline, "compare", fake_compare)
    assert main(["compare", "--model", NARROW, "--variants", "int8_per_channel", "--quiet"]) == 0
    assert seen == [([NARROW], "int8_per_channel")]
    assert main(["compare", "--model", "mobilenet_v2_036", "--quiet"]) == 2
    assert "unknown model(s) ['mobilenet_v2_036']" in capsys.readouterr().err


@pytest.mark.parametrize("argv, models", [
    (["train", "--model", NARROW, "--qat", "", "--dc", "", "--low-bit", ""], [NARROW]),
    (["train", "--qat", "", "--dc", "", "--low-bit", ""], [*MODELS, "patch_encoder"]),
    (["train", "--model", "all", "--qat", "", "--dc", "", "--low-bit", ""], [*MODELS, "patch_encoder"]),
])
def test_qlab_train_trains_it_when_named_and_all_leaves_it_out(argv, models, monkeypatch):
    import qlab.workbook.train as train

    seen = []

    def fake_train_zoo(names, *args, **kwargs):
        seen.append(list(names))
        return pd.DataFrame({"same as shipped": [None]}, index=["entry"])

    monkeypatch.setattr(train, "train_zoo", fake_train_zoo)
    assert main(argv) == 0
    assert seen == [models]
