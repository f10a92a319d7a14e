"""Synthetic tensors shaped like the ones real networks hold, for lessons and widgets."""

from __future__ import annotations

import numpy as np

__all__ = ["SYNTHETIC_SOURCES", "synthetic_tensor", "synthetic_depthwise_kernel"]

#: Synthetic tensors the bucket explorer offers as data sources.
SYNTHETIC_SOURCES: tuple[str, ...] = (
    "normal + outliers",
    "normal",
    "uniform",
    "laplace (weight-like)",
    "relu activations",
)
def synthetic_tensor(source: str = "normal + outliers", size: int = 20_000,
                     seed: int = 0) -> np.ndarray:
    """A 1-D float32 tensor with a shape of distribution seen in real networks.

    ``"normal + outliers"`` is mostly N(0, 1) with 0.1 % of values out near
    +-10 - the case where a min/max range wastes most buckets on the outliers.
    Taught in ``01_buckets``.
    """
    if source not in SYNTHETIC_SOURCES:
        raise ValueError(f"source must be one of {SYNTHETIC_SOURCES}, got {source!r}")
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    rng = np.random.default_rng(seed)
    if source == "normal + outliers":
        x = rng.normal(size=size)
        n_out = max(2, size // 1000)
        idx = rng.choice(size, n_out, replace=False)
        x[idx] = rng.choice([-1.0, 1.0], n_out) * rng.uniform(8.0, 12.0, n_out)
    elif source == "normal":
        x = rng.normal(size=size)
    elif source == "uniform":
        x = rng.uniform(-3.0, 3.0, size)
    elif source == "laplace (weight-like)":
        x = rng.laplace(scale=0.05, size=size)
    else:
        x = np.maximum(rng.normal(0.5, 1.5, size), 0.0)
    return x.astype(np.float32)


def synthetic_depthwise_kernel(channels: int = 32, seed: int = 0) -> np.ndarray:
    """A (3, 3, channels, 1) depthwise kernel whose channels differ in scale by ~100x.

    Trained MobileNets look like this after batch norm is folded into the
    depthwise kernels: a few channels are large, many are tiny - the case where
    one per-tensor range leaves the tiny channels with one or two buckets.
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    rng = np.random.default_rng(seed)
    channel_scale = np.exp(rng.normal(-2.0, 1.2, channels))
    return (rng.normal(size=(3, 3, channels, 1)) * channel_scale[None, None, :, None]).astype(
        np.float32)
