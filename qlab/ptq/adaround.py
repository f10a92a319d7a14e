"""AdaRound: learn, weight by weight, whether to round up or down (Nagel et al. 2020).

Round-to-nearest minimises each weight's own error, but what matters is the layer's
output. "Up or Down? Adaptive Rounding for Post-Training Quantization" chooses, per
weight, between ``floor(w / s)`` and ``floor(w / s) + 1`` so as to reconstruct each
layer's output on a few hundred unlabeled images. It is post-training quantization
(no labels, no training of the weights themselves, minutes not hours), the rung an
engineer tries before quantization-aware training.

:func:`adaround_weights` works layer by layer in order (Conv2D, DepthwiseConv2D, Dense
of the batch-norm-folded model). For layer ``l`` it minimises

    mean ||f(W x) - f(W~ x^)||^2 + lambda * sum(1 - |2 h(V) - 1| ** beta)

where ``x`` is the layer's input in the float model, ``x^`` its input in the *partly
quantized* model (every earlier layer already rounded: the paper's asymmetric
reconstruction, eq. 26, so later layers also correct the error of earlier ones),
``W~ = s * clip(floor(W / s) + h(V), qmin, qmax)`` the soft weights on TFLite's
symmetric narrow N-bit grid and ``f`` the layer's activation: the reconstruction is of
the *post-activation* output (the paper's eq. 25; a ReLU layer that alone follows the
weight layer counts as its activation, as TFLite fuses it). ``lambda = 0.01``; the first
20% of the iterations reconstruct only, then ``beta`` is annealed linearly from 20 to 2.
At the end ``h(V) >= 0.5`` rounds up and the kernel holds exact N-bit grid values.
Activations stay float here (the converter quantizes them later).

The math in numpy is :mod:`qlab.numerics.adaround`. Taught in ``06_quantization_aware_training`` (between PTQ
and QAT); the full-size comparison it loads is the study
:mod:`qlab.workbook.studies.adaround`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from qlab.ptq.batch_norm_folding import fold_batch_norm
from qlab.zoo.introspect import WEIGHT_LAYER_TYPES, sole_consumer, weight_layers
from qlab.zoo.progress import say
from qlab.numerics.adaround import (GAMMA, ZETA, adaround_scales, beta_schedule, grid_limits,
                                    hard_codes, initial_rounding_logits, nearest_codes)
from qlab.numerics.validate import check_bool, check_int, check_num_bits

__all__ = ["ADAROUND_ITERATIONS", "REGULARIZATION", "adaround_weights"]

#: Optimisation steps per layer at each size (the paper uses 10,000 at batch 32 on ImageNet).
ADAROUND_ITERATIONS = {"full": 1000, "smoke": 60}
REGULARIZATION = 0.01  #: the paper's lambda
BATCH_SIZE = 32  # the paper's
LEARNING_RATE = 1e-2  # AIMET's 1e-3 is for 10,000 steps; 10x fewer steps need 10x larger ones
_FUSED_ACTIVATIONS = ("ReLU", "Activation")


def _check_calibration(x_calib: Any, model: Any) -> np.ndarray:
    try:
        x = np.asarray(x_calib, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"x_calib must be a numeric array of images, got {type(x_calib).__name__}") from error
    expected = tuple(model.input_shape[1:])
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"x_calib must have shape (n, {', '.join(map(str, expected))}) to feed "
                         f"model {model.name!r}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x_calib is empty; AdaRound needs calibration images (the paper uses 1024)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x_calib contains {int(np.sum(~np.isfinite(x)))} NaN/inf value(s); "
                         "calibration images must be finite")
    return x


def _check_layers(model: Any) -> None:
    """Every layer with a kernel must be one AdaRound handles (else its weights would stay float)."""
    for layer in model.layers:
        kind = type(layer).__name__
        if hasattr(layer, "layers"):
            raise TypeError(f"layer {layer.name!r} is a nested model ({kind}); flatten it first: "
                            "adaround_weights rounds the model's own layers only")
        if hasattr(layer, "kernel") and kind not in WEIGHT_LAYER_TYPES:
            raise TypeError(f"layer {layer.name!r} is a {kind}; adaround_weights handles "
                            f"{', '.join(WEIGHT_LAYER_TYPES)} only")
        config = layer.get_config()
        if kind in WEIGHT_LAYER_TYPES and (config.get("groups", 1) != 1
                                           or config.get("data_format", "channels_last") != "channels_last"):
            raise TypeError(f"layer {layer.name!r} ({kind}) is grouped or channels_first; "
                            "adaround_weights handles channels_last, ungrouped layers only")


def _activation(model: Any, layer: Any) -> Callable[[Any], Any]:
    """``f``: the layer's own activation, then a ReLU/Activation layer that alone follows it."""
    follower = sole_consumer(model, layer.name)
    fused = follower if type(follower).__name__ in _FUSED_ACTIVATIONS else None

    def f(y: Any) -> Any:
        y = layer.activation(y)
        return fused(y) if fused is not None else y
    return f


def _linear_op(layer: Any) -> Callable[[Any, Any], Any]:
    """``(x, kernel) -> x * kernel + bias`` of a Conv2D/DepthwiseConv2D/Dense with a given kernel."""
    from qlab.zoo.keras2 import tf

    kind, config = type(layer).__name__, layer.get_config()
    bias = layer.bias if layer.use_bias else 0.0
    if kind == "Dense":
        return lambda x, k: tf.tensordot(x, k, axes=1) + bias
    strides = (1, *config["strides"], 1)
    padding = config["padding"].upper()
    if kind == "DepthwiseConv2D":
        return lambda x, k: tf.nn.depthwise_conv2d(x, k, strides, padding,
                                                   dilations=config["dilation_rate"]) + bias
    return lambda x, k: tf.nn.conv2d(x, k, strides, padding, dilations=config["dilation_rate"]) + bias


def _flat(kernel: np.ndarray, kind: str) -> np.ndarray:
    """The kernel with its output channels last (DepthwiseConv2D: (kh, kw, in * multiplier))."""
    if kind == "DepthwiseConv2D":
        kh, kw, cin, mult = kernel.shape
        return kernel.reshape(kh, kw, cin * mult)
    return kernel


def _layer_inputs(model: Any, name: str, x: np.ndarray) -> np.ndarray:
    from qlab.zoo.keras2 import keras

    probe = keras.Model(model.inputs, model.get_layer(name).input)
    return np.asarray(probe.predict(x, batch_size=256, verbose=0))


class _LayerProblem:
    """One layer's reconstruction problem: float target, quantized-model input, weight grid."""

    def __init__(self, float_model: Any, layer_name: str, x_float: np.ndarray, x_quant: np.ndarray,
                 num_bits: int, per_channel: bool) -> None:
        from qlab.zoo.keras2 import tf

        self.layer = float_model.get_layer(layer_name)
        self.kind = type(self.layer).__name__
        self.kernel = np.asarray(self.layer.get_weights()[0], dtype=np.float32)
        self.flat = _flat(self.kernel, self.kind)
        self.num_bits = num_bits
        self.scale = adaround_scales(self.flat, num_bits, per_channel)
        self.qmin, self.qmax = grid_limits(num_bits)
        self.base = np.floor(self.flat.astype(np.float64) / self.scale).astype(np.float32)
        self.op, self.f = _linear_op(self.layer), _activation(float_model, self.layer)
        self.x_quant = tf.constant(x_quant)
        self.target = self._outputs(x_float, self.kernel)

    def _outputs(self, x: Any, kernel: np.ndarray, batch: int = 256) -> Any:
        from qlab.zoo.keras2 import tf

        parts = [self.f(self.op(x[i:i + batch], kernel)) for i in range(0, len(x), batch)]
        return tf.concat(parts, axis=0)

    def kernel_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """The layer's kernel (its own shape) holding ``scale * codes``: exact grid values."""
        return (self.scale * codes.astype(np.float32)).astype(np.float32).reshape(self.kernel.shape)

    def mse(self, kernel: np.ndarray) -> float:
        """Mean squared difference of ``f(W x)`` and ``f(kernel x^)`` on every calibration image."""
        from qlab.zoo.keras2 import tf

        out = self._outputs(self.x_quant, kernel)
        return float(tf.reduce_mean(tf.square(out - self.target)))


def _soft_kernel(problem: _LayerProblem, v: Any) -> Any:
    """``s * clip(floor(W / s) + h(V), qmin, qmax)`` in TensorFlow, reshaped to the layer's kernel."""
    from qlab.zoo.keras2 import tf

    h = tf.clip_by_value(tf.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
    soft = problem.scale * tf.clip_by_value(problem.base + h, float(problem.qmin), float(problem.qmax))
    return tf.reshape(soft, problem.kernel.shape), h


def _optimize(problem: _LayerProblem, iterations: int, seed: int, batch_size: int,
              learning_rate: float) -> np.ndarray:
    """Train ``V`` (Adam) on reconstruction + annealed rounding regularizer; return the final ``V``."""
    from qlab.zoo.keras2 import keras, tf

    v = tf.Variable(initial_rounding_logits(problem.flat, problem.scale))
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(index: Any, beta: Any, weight: Any) -> None:
        with tf.GradientTape() as tape:
            kernel, h = _soft_kernel(problem, v)
            out = problem.f(problem.op(tf.gather(problem.x_quant, index), kernel))
            # squared error summed over channels, averaged over images and positions (as AIMET)
            recon = tf.reduce_mean(tf.reduce_sum(tf.square(out - tf.gather(problem.target, index)), -1))
            regularizer = tf.reduce_sum(1.0 - tf.pow(tf.abs(2.0 * h - 1.0), beta))
            loss = recon + weight * regularizer
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])

    rng = np.random.default_rng(seed)
    n = int(problem.x_quant.shape[0])
    for iteration in range(iterations):
        beta = beta_schedule(iteration, iterations)
        index = rng.choice(n, size=min(batch_size, n), replace=False)
        step(tf.constant(index), tf.constant(2.0 if beta is None else beta, tf.float32),
             tf.constant(0.0 if beta is None else REGULARIZATION, tf.float32))
    return v.numpy()


def adaround_weights(model: Any, x_calib: np.ndarray, num_bits: int, per_channel: bool = True,
                     iterations: int = ADAROUND_ITERATIONS["full"], seed: int = 0, verbose: bool = True,
                     batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE
                     ) -> tuple[Any, "pd.DataFrame"]:
    """AdaRound every Conv2D/DepthwiseConv2D/Dense kernel of ``model`` to ``num_bits`` (batch norm folded).

    Layer by layer in order, each rounding chosen to reconstruct the layer's post-activation
    output on ``x_calib`` given the already rounded earlier layers (see the module docstring).
    Biases and activations stay float. Taught in ``06_quantization_aware_training``.

    Args:
        model: a Keras 2 model; every layer with a kernel must be Conv2D, DepthwiseConv2D or Dense.
        x_calib: unlabeled images shaped like the model's input (the paper uses 1024).
        num_bits: weight bits, 2..8 (TFLite's symmetric narrow grid, ``qmax = 2**(N-1) - 1``).
        per_channel: one scale per output channel (True) or per tensor.
        iterations: Adam steps per layer (20% warm-up without the regularizer).
        seed: seeds the mini-batch order.
        verbose: print one line per layer.
        batch_size, learning_rate: Adam's mini-batch and step size.

    Returns:
        ``(model, table)``: a batch-norm-folded Keras 2 copy whose kernels hold exact N-bit grid
        values, and one row per layer: ``nearest MSE`` and ``AdaRound MSE`` (mean squared
        error of the post-activation output against the float layer, on ``x_calib``, with the
        rounded earlier layers), ``flipped share`` (weights rounded the other way than nearest)
        and ``seconds``.
    """
    import pandas as pd

    from qlab.zoo.keras2 import require_keras2_model

    model = require_keras2_model(model)
    num_bits = check_num_bits(num_bits, high=8)
    per_channel = check_bool(per_channel, "per_channel")
    iterations = check_int(iterations, "iterations", 1, 10**7)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    batch_size = check_int(batch_size, "batch_size", 1, 10**6)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
            or not 0 < learning_rate < 1:
        raise ValueError(f"learning_rate must be a number in (0, 1), e.g. 1e-2, got {learning_rate!r}")
    x = _check_calibration(x_calib, model)
    _check_layers(model)
    float_model, rounded = fold_batch_norm(model), fold_batch_norm(model)
    rows = []
    for name in weight_layers(float_model):
        rows.append(_round_layer(float_model, rounded, name, x, num_bits, per_channel,
                                 iterations, seed, batch_size, float(learning_rate)))
        row = rows[-1]
        say(verbose, f"AdaRound {name} ({num_bits}-bit, {'per-channel' if per_channel else 'per-tensor'}): "
                      f"MSE {row['nearest MSE']:.4g} nearest -> {row['AdaRound MSE']:.4g}, "
                      f"{100 * row['flipped share']:.1f}% flipped ({row['seconds']:.1f} s)")
    return rounded, pd.DataFrame(rows).set_index("layer")


def _round_layer(float_model: Any, rounded: Any, name: str, x: np.ndarray, num_bits: int,
                 per_channel: bool, iterations: int, seed: int, batch_size: int,
                 learning_rate: float) -> dict[str, Any]:
    """AdaRound layer ``name`` of ``rounded`` in place (earlier layers already rounded); its table row."""
    start = time.perf_counter()
    problem = _LayerProblem(float_model, name, _layer_inputs(float_model, name, x),
                            _layer_inputs(rounded, name, x), num_bits, per_channel)
    v = _optimize(problem, iterations, seed, batch_size, learning_rate)
    codes = hard_codes(problem.flat, v, problem.scale, num_bits)
    nearest = nearest_codes(problem.flat, problem.scale, num_bits)
    kernel = problem.kernel_from_codes(codes)
    weights = rounded.get_layer(name).get_weights()
    rounded.get_layer(name).set_weights([kernel, *weights[1:]])
    return {"layer": name, "kind": problem.kind, "weights": int(codes.size),
            "nearest MSE": problem.mse(problem.kernel_from_codes(nearest)),
            "AdaRound MSE": problem.mse(kernel), "flipped share": float(np.mean(codes != nearest)),
            "seconds": time.perf_counter() - start}
