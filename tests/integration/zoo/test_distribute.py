"""QAT under tf.distribute.MirroredStrategy over two logical CPUs, beside the one-device run.

Logical devices must be made before TensorFlow initialises its devices, and the test
process has long done so; each run is therefore a fresh Python process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# One process: split the CPU, then the same QAT fine-tune without and with the strategy.
# The global batch (128) is the same in both, so both take the same 2 steps on the same
# images in the same order; only the split of each batch over replicas differs.
SCRIPT = textwrap.dedent("""
    import json
    from qlab.zoo.distribute import cpu_mirrored_strategy, logical_cpus
    from qlab.qat.training import max_weight_difference, qat_run
    strategy = cpu_mirrored_strategy(2)  # before anything else touches TensorFlow
    devices = logical_cpus(2)  # the same split again is no error
    from qlab.zoo.models import load_or_train, mnist_for
    from qlab.conversion.tflite import predict_tflite

    float_model = load_or_train("mnist_cnn", "smoke", verbose=0)
    (x, y), (x_test, y_test) = mnist_for("mnist_cnn", "smoke")
    single = qat_run(float_model, x[:256], y[:256], x_test, y_test)
    mirrored = qat_run(float_model, x[:256], y[:256], x_test, y_test, strategy=strategy)
    agree = (predict_tflite(single.tflite, x_test).argmax(1)
             == predict_tflite(mirrored.tflite, x_test).argmax(1)).mean()
    print(json.dumps({
        "devices": devices, "replicas": [single.replicas, mirrored.replicas],
        "accuracy": [single.tflite_accuracy, mirrored.tflite_accuracy],
        "seconds": [single.fine_tune_seconds, mirrored.fine_tune_seconds],
        "int8_file": [single.tflite[4:8].decode(), mirrored.tflite[4:8].decode()],
        "max_abs_weight_difference": max_weight_difference(single, mirrored),
        "prediction_agreement": float(agree)}))
""")


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QLAB_PROGRESS": "0"}  # QLAB_ARTIFACTS: the session's shared cache
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_qat_under_mirrored_strategy_converts_and_scores_like_one_device(record_property):
    done = _run(SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    single, mirrored = result["accuracy"]
    print(f"\nint8 file accuracy: 1 device {single:.4f}, MirroredStrategy over 2 logical CPUs "
          f"{mirrored:.4f} (difference {mirrored - single:+.4f}); max |weight difference| "
          f"{result['max_abs_weight_difference']:.3g}; the two files agree on "
          f"{result['prediction_agreement']:.2%} of the test images")
    for key, value in result.items():
        record_property(key, value)
    assert result["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert result["replicas"] == [1, 2]
    assert result["int8_file"] == ["TFL3", "TFL3"]  # both converted to a LiteRT flatbuffer
    assert min(single, mirrored) > 0.3  # 10 classes: chance is 0.1
    assert abs(mirrored - single) <= 0.05 and result["prediction_agreement"] >= 0.9
    # same data, same steps: the replicas change the sums' order and TFMOT's ranges, not the training
    assert result["max_abs_weight_difference"] < 1e-2


def test_logical_cpus_after_tensorflow_started_is_a_clear_error():
    done = _run(textwrap.dedent("""
        from qlab.zoo.keras2 import tf
        tf.constant(1.0) + 1.0  # TensorFlow initialises its devices: one logical CPU
        from qlab.zoo.distribute import logical_cpus
        logical_cpus(2)
    """))
    assert done.returncode != 0
    assert "RuntimeError: logical_cpus(2) came too late" in done.stderr
    assert "1 logical CPU)" in done.stderr and "Restart the kernel" in done.stderr

