"""qlab.workbook.bench.measure for real: converted files, latency repeats, notebooks, widgets."""

import numpy as np
import pytest

from qlab.conversion.tflite_file import size_breakdown
from qlab.workbook.bench import measure
from qlab.workbook.pipeline import zoo_tflite_dir


def _tiny_model():
    from qlab.zoo.keras2 import keras

    return keras.Sequential([keras.Input(shape=(8,)),
                             keras.layers.Dense(16, bias_initializer="ones")])


class _FakeComparison:
    """What measure_compare reads of qlab.workbook.pipeline.compare's result."""

    config = {"size": "full", "seed": 0}

    def __init__(self, model):
        self._rows = [{"model": model, "variant": v, "accuracy": 0.99, "evaluated_with": e}
                      for v, e in (("float32", "litert"), ("int8_per_channel", "litert"),
                                   ("qat_4bit", "keras"))]

    def rows(self):
        return self._rows


def test_measure_compare_adds_repeated_latency_sizes_and_spread_to_the_compare_rows(
        artifacts, monkeypatch):
    from qlab.conversion.converter import convert

    model = _tiny_model()
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    folder = zoo_tflite_dir("mnist_cnn", "full", 0)
    folder.mkdir(parents=True)
    (folder / "float32.tflite").write_bytes(convert(model, "float32"))
    (folder / "int8_per_channel.tflite").write_bytes(convert(model, "int8_per_channel", x, 20))

    def compare(models, variants, **kwargs):  # the comparison itself is tested in test_pipeline.py
        if models == ["mobilenet_v2"]:
            raise RuntimeError("out of memory")
        return _FakeComparison(models[0])

    monkeypatch.setattr("qlab.workbook.pipeline.compare", compare)
    out = measure.measure_compare("mnist_cnn,mobilenet_v2", "float32,int8_per_channel,qat_4bit",
                                  latency_repeats=2, latency_runs=5, verbose=False)
    rows = {r["variant"]: r for r in out["rows"]}
    assert rows["int8_per_channel"]["latency_repeats"] == 2
    int8 = rows["int8_per_channel"]
    assert 0 < int8["latency_ms_min"] <= int8["latency_ms"] <= int8["latency_ms_max"]
    assert rows["float32"]["latency_ratio"] == 1.0 and "latency_ms" not in rows["qat_4bit"]
    assert set(out["size_breakdown"]["mnist_cnn"]) == {"float32", "int8_per_channel"}
    assert out["size_breakdown"]["mnist_cnn"]["int8_per_channel"]["int8"] == 8 * 16
    assert out["scale_spread"]["mnist_cnn"]["channels"] == 16
    assert out["errors"] == {"mobilenet_v2": "RuntimeError: out of memory"}
    # each file's ops, counted from it; a row without a file (qat_4bit here) has none
    assert rows["float32"]["float_ops"] == 1 and rows["int8_per_channel"]["float_ops"] == 0
    assert "float_ops" not in rows["qat_4bit"]
    assert out["config"]["latency_repeats"] == 2 and out["config"]["models"] == ["mnist_cnn",
                                                                                   "mobilenet_v2"]


def test_the_transformers_comparison_keeps_its_files_for_the_bench_to_time_again(artifacts):
    from qlab.workbook.pipeline import compare
    from qlab.zoo.transformer import NAME

    compare(NAME, ["float32", "dynamic_int8", "int16x8", "qat_int8"], size="smoke", latency=False, save=False)
    # int16x8 is refused (the LayerNorm's NEG) and qat_int8 not applicable: no file for either
    assert sorted(p.name for p in zoo_tflite_dir(NAME, "smoke", 0).glob("*.tflite")) == [
        "dynamic_int8.tflite", "float32.tflite"]


def test_size_breakdown_finds_the_weights_of_a_tiny_model():
    from qlab.conversion.converter import convert

    model = _tiny_model()
    model_bytes = convert(model, "float32")
    parts = size_breakdown(model_bytes)
    # the 8x16 kernel and 16 biases; the input and the output are not constants
    assert parts == {"float32": 4 * (8 * 16 + 16), "scales_zero_points": 0,
                     "other": len(model_bytes) - 4 * (8 * 16 + 16)}
    assert parts["other"] > 0
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    parts = size_breakdown(convert(model, "int8_per_channel", x, 20))
    assert parts["int8"] == 8 * 16 and parts["int32"] == 4 * 16 and "float32" not in parts
    # 16 kernel + 16 bias channels with their own scale (4 bytes) and zero-point (8 bytes)
    assert parts["scales_zero_points"] >= 12 * 32


def _interpreter_op_counts(model_bytes):
    """The same counts from the LiteRT interpreter's own op and tensor details (not the flatbuffer reader)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # without the default XNNPACK delegate, which would add a DELEGATE node of its own
    interpreter = Interpreter(model_content=model_bytes,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    names = [op["op_name"] for op in ops]

    def reads_or_writes_float(op):
        return any(np.issubdtype(dtypes[i], np.floating) for i in [*op["inputs"], *op["outputs"]] if i >= 0)

    return {"float_ops": sum(op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and reads_or_writes_float(op)
                             for op in ops),
            "quantize_ops": names.count("QUANTIZE"), "dequantize_ops": names.count("DEQUANTIZE")}


def test_op_counts_agree_with_the_interpreters_op_details():
    from qlab.conversion.converter import convert

    model = _tiny_model()
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    files = {v: convert(model, v, x, 20) for v in ("float32", "float16", "dynamic_int8", "int8_per_channel")}
    counts = {v: measure.op_counts(b) for v, b in files.items()}
    assert counts == {v: _interpreter_op_counts(b) for v, b in files.items()}
    # by hand: one FULLY_CONNECTED, in float unless the file is full-integer; float16 unpacks its
    # kernel and bias with a DEQUANTIZE each
    assert counts["float32"] == counts["dynamic_int8"] == {"float_ops": 1, "quantize_ops": 0, "dequantize_ops": 0}
    assert counts["float16"] == {"float_ops": 1, "quantize_ops": 0, "dequantize_ops": 2}
    assert counts["int8_per_channel"]["float_ops"] == 0


@pytest.mark.slow
def test_measure_notebooks_times_each_and_records_a_failure(tmp_path):
    import nbformat

    good, bad = tmp_path / "00_good.ipynb", tmp_path / "01_bad.ipynb"
    for path, source in ((good, "SMOKE = False"), (bad, "raise ValueError('broken lesson')")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, path)
    seen = []
    rows = measure.measure_notebooks([good, bad], modes=("smoke",), verbose=False,
                                     on_run=lambda so_far: seen.append(len(so_far)))
    assert [(r["notebook"], r["ok"]) for r in rows] == [("00_good.ipynb", True),
                                                        ("01_bad.ipynb", False)]
    assert "broken lesson" in rows[1]["error"] and all(r["seconds"] > 0 for r in rows)
    assert seen == [1, 2]


def test_measure_widgets_times_every_case_of_the_widget_script():
    rows = measure.measure_widgets(repeats=2)
    assert len(rows) == len(measure.load_widget_benchmark().CASES)
    assert all(r["updates"] == 2 and 0 < r["median_ms"] <= r["max_ms"] for r in rows)
