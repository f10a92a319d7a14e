"""The zoo's fit table gathers every integer variant's file from the artifacts folder, and only those."""

from __future__ import annotations

import pandas as pd
import pytest

from qlab.workbook import micro_fit


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """An artifacts folder with a few stand-in files where qlab.compare keeps a zoo model's .tflite files."""
    monkeypatch.setenv("QLAB_ARTIFACTS", str(tmp_path))
    for name, variants in {"mnist_cnn-full-s0": ["float32", "float16", "int8_per_channel", "qat_4bit"],
                           "patch_encoder-full-s0": ["float32", "keras_int4", "aeq_int4_static"],
                           "mobilenet_v1-full-s0": ["float32"]}.items():
        (tmp_path / "tflite" / name).mkdir(parents=True)
        for variant in variants:
            (tmp_path / "tflite" / name / f"{variant}.tflite").write_bytes(f"{name}/{variant}".encode())
    return tmp_path


def test_integer_variants_are_every_variant_but_the_float_ones():
    assert "float32" not in micro_fit.INTEGER_VARIANTS and "float16" not in micro_fit.INTEGER_VARIANTS
    for variant in ("int8_per_channel", "dynamic_int8", "int16x8", "qat_4bit", "aeq_int4_static", "keras_int4"):
        assert variant in micro_fit.INTEGER_VARIANTS


def test_every_integer_file_is_gathered_under_model_and_variant(artifacts):
    files = micro_fit.zoo_integer_files(["mnist_cnn", "patch_encoder"])
    assert list(files) == ["mnist_cnn/int8_per_channel", "mnist_cnn/qat_4bit", "patch_encoder/aeq_int4_static",
                           "patch_encoder/keras_int4"]
    assert files["mnist_cnn/qat_4bit"] == b"mnist_cnn-full-s0/qat_4bit"


def test_a_model_without_integer_files_says_how_to_make_them(artifacts):
    with pytest.raises(FileNotFoundError, match=r"no integer \.tflite file of 'mobilenet_v1'.*qlab\.compare"):
        micro_fit.zoo_integer_files(["mobilenet_v1"])
    with pytest.raises(ValueError, match="size must be one of"):
        micro_fit.zoo_integer_files(["mnist_cnn"], size="huge")


def test_all_is_the_three_cnns_and_the_transformer():
    assert micro_fit.zoo_models("all") == ["mnist_cnn", "mobilenet_v1", "mobilenet_v2", "patch_encoder"]


def test_the_zoo_table_splits_the_file_name_into_model_and_variant(artifacts, monkeypatch):
    def fake_fit_table(files, boards):
        return pd.DataFrame({"file": list(files), "board": "b", "fits": True})

    monkeypatch.setattr(micro_fit, "fit_table", fake_fit_table)
    table = micro_fit.zoo_fit_table(["mnist_cnn"])
    assert list(table.columns) == ["model", "variant", "board", "fits"]
    assert table[["model", "variant"]].values.tolist() == [["mnist_cnn", "int8_per_channel"], ["mnist_cnn", "qat_4bit"]]
