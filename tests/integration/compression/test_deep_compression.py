"""Deep Compression on the zoo: the smoke chain through ``compare``, and the shipped full-size CNN's file.

The smoke models are barely trained, so only what does not depend on accuracy is checked there:
the zeros and the clusters reach the int8 files, and each stage compresses further. The full-size
``mnist_cnn`` chain is shipped, so its PCQAT file is measured against the issue's bar here.
"""

from __future__ import annotations

import pytest

from qlab.compression import cluster, deep_compression as dc, prune
from qlab.conversion.converter import DC_VARIANTS
from qlab.numerics.compression import gzip_size


@pytest.fixture(scope="module")
def smoke_table():
    import qlab

    result = qlab.compare("mnist_cnn", ["float32", "int8_per_channel", *DC_VARIANTS], size="smoke",
                          latency=False, save=False)
    return result.table.set_index("variant")


@pytest.mark.slow
def test_every_stage_compresses_further_and_the_stored_size_does_not_move(smoke_table):
    t = smoke_table
    assert t.loc["pruned_int8", "size_bytes"] == t.loc["int8_per_channel", "size_bytes"]  # zeros stored densely
    assert t.loc["int8_per_channel", "gzip_ratio"] < t.loc["pruned_int8", "gzip_ratio"] < t.loc["pcqat_int8",
                                                                                              "gzip_ratio"]
    assert t.loc["int8_per_channel", "gzip_ratio"] < t.loc["clustered_int8", "gzip_ratio"] < t.loc["pcqat_int8",
                                                                                                  "gzip_ratio"]
    assert t.loc["pcqat_int8", "gzip_ratio"] > 10
    assert t.loc[["pqat_int8", "cqat_int8", "pcqat_int8"], "keras_tflite_agreement"].min() > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pruned_int8", "pqat_int8", "pcqat_int8"])
def test_the_pruned_zeros_survive_in_the_int8_file(smoke_table, shared_artifacts, variant):
    from qlab.files.paths import artifacts_dir

    del smoke_table  # made the files
    model_bytes = (artifacts_dir() / "tflite" / "mnist_cnn-smoke-s0" / f"{variant}.tflite").read_bytes()
    kept = prune.zeros_kept_in_file(dc.load_stage("mnist_cnn", "pruned", "smoke"), model_bytes)
    assert len(kept) == 4 and kept["kept"].min() >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["clustered_int8", "cqat_int8", "pcqat_int8"])
def test_no_channel_keeps_more_values_than_clusters(smoke_table, variant):
    from qlab.files.paths import artifacts_dir

    del smoke_table
    model_bytes = (artifacts_dir() / "tflite" / "mnist_cnn-smoke-s0" / f"{variant}.tflite").read_bytes()
    table = cluster.clusters_kept(model_bytes, dc.RECIPES["mnist_cnn"].clusters)
    assert table["kept"].dropna().all() and table["unique_per_channel_max"].max() <= dc.RECIPES["mnist_cnn"].clusters


@pytest.mark.slow
def test_plain_qat_of_a_pruned_model_loses_its_zeros_where_pqat_keeps_them():
    import qlab
    from qlab.zoo.models import mnist_for

    pruned = dc.load_stage("mnist_cnn", "pruned", "smoke")
    (x, y), _ = mnist_for("mnist_cnn", "smoke")
    plain = qlab.quantize_whole_model(pruned)
    # Adam moves every weight by about the learning rate per step: 48 steps of 1e-3 carry a zero
    # across the int8 rounding threshold (half a step, max|w| / 254) unless something pins it
    qlab.qat.training.fine_tune(plain, x, y, epochs=3, batch_size=32, learning_rate=1e-3, verbose=0)
    kept = prune.zeros_kept_in_file(pruned, qlab.convert_qat(plain))
    assert kept["kept"].max() < 0.5


@pytest.mark.slow
def test_the_shipped_mnist_cnn_pcqat_file_is_12x_smaller_compressed_within_0_3_points():
    import qlab
    from qlab.zoo.models import load_or_train, mnist_for

    (x, _), (x_test, y_test) = mnist_for("mnist_cnn", "full")
    float_file = qlab.convert(load_or_train("mnist_cnn", "full"), "float32")
    pcqat = dc.load_stage("mnist_cnn", "pcqat", "full")  # shipped: loads in seconds
    pcqat_file = dc.variant_file("pcqat_int8", pcqat, x, 500)
    assert gzip_size(float_file) / gzip_size(pcqat_file) >= 12
    loss = qlab.evaluate_tflite(float_file, x_test, y_test) - qlab.evaluate_tflite(pcqat_file, x_test, y_test)
    assert loss <= 0.003
    assert prune.zeros_kept_in_file(dc.load_stage("mnist_cnn", "pruned", "full"), pcqat_file)["kept"].min() >= 0.95
