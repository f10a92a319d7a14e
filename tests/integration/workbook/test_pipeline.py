"""The experiment engine end to end: `qlab compare --smoke` for every model and variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib
import pandas as pd
import pytest

from qlab.cli import main
from qlab.conversion.converter import AEQ_VARIANTS, PTQ_VARIANTS, QAT_VARIANTS

# The CLI run covers every model with the post-training, QAT and LiteRT Quantizer variants. The Deep Compression
# variants are covered on the CNN (tests/integration/compression/test_deep_compression.py) and on a Keras 3
# model (test_keras3_compare.py): on the MobileNets, building TFMOT's cluster-preserving QAT graph
# alone takes minutes even at smoke size, so their full-size files are measured by `make bench`.
VARIANTS = [*PTQ_VARIANTS, *QAT_VARIANTS, *AEQ_VARIANTS]
from qlab.zoo.models import MODELS
from qlab.workbook.pipeline import COLUMNS, ComparisonResult, check_models

INT8_VARIANTS = ("dynamic_int8", "int8_per_channel", "int8_per_tensor", "qat_int8", "aeq_int8_per_channel",
                 "aeq_int8_per_tensor", "aeq_dynamic_int8")
matplotlib.use("Agg")


def test_unknown_names_exit_2_listing_the_valid_ones(capsys):
    assert main(["compare", "--model", "resnet50", "--smoke"]) == 2
    assert "valid models: mnist_cnn, mobilenet_v1, mobilenet_v2" in capsys.readouterr().err
    assert main(["compare", "--variants", "float32,int3", "--smoke"]) == 2
    assert "unknown variant(s) ['int3']" in capsys.readouterr().err


def test_check_models_accepts_all_repeats_and_comma_lists():
    assert check_models("all") == list(MODELS)
    assert check_models("mnist_cnn,mobilenet_v2") == ["mnist_cnn", "mobilenet_v2"]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    for option in ("--model", "--variants", "--smoke", "--seed", "--json", "--csv",
                   "--no-latency", "--calibration-samples", "--quiet"):
        assert option in out
    assert "qat_4bit" in out and "latency_ms" in out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, shared_artifacts):
    """One `python -m qlab compare --smoke` for all models and the PTQ and QAT variants (a few minutes).

    It runs in the session's shared artifacts folder, so smoke models that other tests
    already trained are loaded from the cache, as a user's second run would.
    """
    out = tmp_path_factory.mktemp("compare") / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "qlab", "compare", "--smoke", "--model", "all", "--variants", ",".join(VARIANTS),
         "--json", str(out), "--quiet"], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout, shared_artifacts


@pytest.mark.slow
def test_smoke_compare_covers_every_model_and_variant(smoke_run):
    rows, stdout, _ = smoke_run
    assert [(r["model"], r["variant"]) for r in rows] == [(m, v) for m in MODELS for v in VARIANTS]
    for row in rows:
        assert set(COLUMNS) <= set(row)
        assert 0.0 <= row["accuracy"] <= 1.0
    by = {(r["model"], r["variant"]): r for r in rows}
    for model in MODELS:
        float_size = by[model, "float32"]["size_bytes"]
        assert by[model, "float32"]["latency_ratio"] == 1.0
        for variant in INT8_VARIANTS:
            assert by[model, variant]["size_bytes"] < float_size / 2.5, (model, variant)
            assert by[model, variant]["latency_ms"] > 0
        assert 0.0 <= by[model, "qat_int8"]["keras_tflite_agreement"] <= 1.0
        four_bit = by[model, "qat_4bit"]  # a real file with INT4 weights, run by LiteRT
        assert four_bit["evaluated_with"] == "litert" and four_bit["latency_ms"] > 0
        assert four_bit["size_bytes"] < 0.65 * by[model, "int8_per_channel"]["size_bytes"], model
        assert 0.9 <= four_bit["keras_tflite_agreement"] <= 1.0, model
        for variant in ("aeq_int4_weight_only", "aeq_int4_static", "aeq_int4_blockwise"):  # the Quantizer's INT4
            assert by[model, variant]["size_bytes"] < 0.7 * by[model, "int8_per_channel"]["size_bytes"], model
        # the op tables: full-integer files are integer-only (MobileNet v1's Quantizer files keep SHAPE's input float)
        assert by[model, "int8_per_channel"]["non_integer_ops"] == by[model, "qat_4bit"]["non_integer_ops"] == 0
        assert by[model, "aeq_int4_static"]["non_integer_ops"] == (2 if model == "mobilenet_v1" else 0), model
        assert by[model, "aeq_dynamic_int8"]["non_integer_ops"] > 0 and by[model, "float32"]["non_integer_ops"] > 0
    assert "int8_per_channel" in stdout and "saved to" in stdout


@pytest.mark.slow
def test_smoke_compare_measures_every_row_against_float32(smoke_run):
    rows, stdout, _ = smoke_run
    for row in rows:
        assert 0.0 <= row["top1_agreement"] <= 1.0 and row["kl_divergence"] >= 0.0
        assert row["delta_low"] <= row["accuracy_delta"] <= row["delta_high"], row
        assert 0.0 < row["mcnemar_p"] <= 1.0
    by = {(r["model"], r["variant"]): r for r in rows}
    for model in MODELS:
        reference = by[model, "float32"]
        assert reference["top1_agreement"] == 1.0 and reference["kl_divergence"] == 0.0
        assert (reference["accuracy_delta"], reference["delta_low"], reference["delta_high"]) == (0, 0, 0)
        assert reference["output_sqnr_db"] is None  # identical scores: infinite SQNR, null in JSON
        for variant in [v for v in VARIANTS if v != "float32"]:
            row = by[model, variant]
            assert row["accuracy_delta"] == pytest.approx(row["accuracy"] - reference["accuracy"])
            assert row["output_sqnr_db"] > 0, (model, variant)  # every variant's scores move a little
        assert {by[model, v]["evaluated_with"] for v in VARIANTS} == {"litert"}
    for header in ("agreement %", "output SQNR dB", "KL", "Δ acc. points [95% CI]", "McNemar p"):
        assert header in stdout


@pytest.mark.slow
def test_float32_is_the_reference_even_when_not_requested():
    from qlab.workbook.pipeline import compare

    result = compare(["mnist_cnn"], ["int8_per_tensor", "qat_4bit"], size="smoke", latency=False,
                     save=False)
    table = result.table.set_index("variant")
    assert table.index.tolist() == ["int8_per_tensor", "qat_4bit"]
    assert table[["top1_agreement", "kl_divergence", "output_sqnr_db", "mcnemar_p"]].notna().all().all()
    assert (table["delta_low"] <= table["accuracy_delta"]).all()
    assert (table["accuracy_delta"] <= table["delta_high"]).all()
    assert "Δ acc. points [95% CI]" in repr(result) and "<table" in result._repr_html_()


@pytest.mark.slow
def test_smoke_results_are_persisted_with_the_environment(smoke_run):
    _, _, artifacts = smoke_run
    saved = sorted((artifacts / "results").glob("compare-smoke-*.json"), key=os.path.getmtime)
    record = json.loads(saved[-1].read_text())  # the CLI run's; notebooks may have saved others before
    assert record["environment"]["tensorflow"].startswith("2.")
    assert record["config"]["size"] == "smoke" and len(record["rows"]) == len(MODELS) * len(VARIANTS)
    assert (artifacts / "tflite" / "mnist_cnn-smoke-s0" / "int8_per_channel.tflite").exists()
    four_bit = (artifacts / "tflite" / "mnist_cnn-smoke-s0" / "qat_4bit.tflite").read_bytes()
    from qlab.conversion.converter import weight_types_by_op

    assert weight_types_by_op(four_bit) == {"CONV_2D": {"INT4": 2}, "FULLY_CONNECTED": {"INT4": 2}}


@pytest.mark.slow
def test_plots_draw_the_smoke_table(smoke_run):
    from qlab.plots.comparison import plot_accuracy_vs_size, plot_latency

    table = pd.DataFrame(smoke_run[0])
    fig = plot_accuracy_vs_size(table)
    assert len(fig.axes) == len(MODELS)
    assert len(fig.axes[0].collections) == len(VARIANTS)  # every variant has a file
    fig = plot_latency(table)
    assert len(fig.axes[0].patches) == len(MODELS) * len(VARIANTS)


def test_result_rows_turn_nan_into_none():
    table = pd.DataFrame([{"model": "m", "variant": "qat_4bit", "accuracy": 0.5}]).reindex(
        columns=COLUMNS)
    result = ComparisonResult(table, {"tensorflow": "x"}, {"size": "smoke", "seed": 0})
    row = result.rows()[0]
    assert row["size_bytes"] is None and row["accuracy"] == 0.5
    assert "qat_4bit" in repr(result)


def test_saved_results_load_back_and_the_most_complete_recent_one_is_chosen(artifacts):
    import time

    from qlab.zoo.environment import environment_report
    from qlab.workbook.pipeline import COLUMNS, ComparisonResult, latest_result, load_result, save_result

    def result(rows):
        table = pd.DataFrame([{"model": "mnist_cnn", "variant": v, "accuracy": 0.99} for v in rows])
        return ComparisonResult(table.reindex(columns=COLUMNS), environment_report(),
                                {"size": "full", "seed": 0})

    assert latest_result("full") is None
    big = save_result(result(["float32", "int8_per_channel"]))
    start = time.time()
    small = save_result(result(["float32"]))
    assert load_result(big).table["variant"].tolist() == ["float32", "int8_per_channel"]
    assert latest_result("full").path == big  # most rows wins
    assert latest_result("full", since=start).path == small  # only what came after `since`
