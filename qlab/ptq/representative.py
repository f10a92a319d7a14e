"""Representative data sets that break full-integer calibration, and the one that does not.

The converter fixes every activation's int8 range from the images it is given as
``representative_dataset``. Each builder of :data:`CALIBRATION_FAILURES` makes a
set with a common mistake; :func:`qlab.workbook.studies.calibration_failures.calibration_failures`
measures what each one costs against the proper set (training images, preprocessed
the way the model was trained).

Taught in ``04_post_training_quantization``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from qlab.numerics.validate import check_int

#: Calibration images for the proper set and for the broken sets that have many.
DEFAULT_NUM_SAMPLES = 500
#: The class of the single-class set: MNIST's "1", the thinnest strokes.
SINGLE_CLASS = 1

Builder = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


def _proper(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x[np.sort(rng.choice(len(x), n, replace=False))]


def _pixels_0_255(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    # the model was trained on pixels / 255; forgetting that division is a classic bug
    return _proper(x, y, n, rng) * np.float32(255.0)


def _blank(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((n, *x.shape[1:]), np.float32)


def _single_class(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.flatnonzero(y == SINGLE_CLASS)
    if len(pool) == 0:
        raise ValueError(f"y has no image of class {SINGLE_CLASS} for the single_class set")
    return x[np.sort(rng.choice(pool, min(n, len(pool)), replace=False))]


def _random_noise(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    low, high = float(x.min()), float(x.max())  # noise over the same value range as real images
    return rng.uniform(low, high, (n, *x.shape[1:])).astype(np.float32)


def _one_image(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return _proper(x, y, 1, rng)


#: name -> (builder, what it is). "proper" is the fix; the others are the failures.
CALIBRATION_FAILURES: dict[str, tuple[Builder, str]] = {
    "proper": (_proper, "random training images, preprocessed like training (the fix)"),
    "pixels_0_255": (_pixels_0_255, "training images in [0, 255]; the model expects [0, 1]"),
    "blank": (_blank, "all-black images"),
    "single_class": (_single_class, f"training images of the digit {SINGLE_CLASS} only"),
    "random_noise": (_random_noise, "uniform noise over the pixel range"),
    "one_image": (_one_image, "a single training image"),
}


def check_kinds(kinds: str | Sequence[str]) -> list[str]:
    """Normalise ``"all"``, a name or a sequence of names of :data:`CALIBRATION_FAILURES`."""
    from qlab.numerics.validate import check_names

    return check_names(kinds, CALIBRATION_FAILURES, "kinds")


def broken_representative_data(kind: str, x: np.ndarray, y: np.ndarray,
                               num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0) -> np.ndarray:
    """Calibration images of ``kind`` (a key of :data:`CALIBRATION_FAILURES`), made from ``x``/``y``.

    Taught in ``04_post_training_quantization``.

    Args:
        kind: ``"proper"`` or one of the failures.
        x: training images, float32, preprocessed the way the model expects them.
        y: their integer labels (the single-class set needs them).
        num_samples: how many images (``one_image`` always gives 1; ``single_class`` at
            most as many as there are of that class).
        seed: which images are drawn.

    Returns:
        float32 array ``(n, *x.shape[1:])``.
    """
    if kind not in CALIBRATION_FAILURES:
        raise ValueError(f"kind must be one of {', '.join(CALIBRATION_FAILURES)}, got {kind!r}")
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty numpy array of images (batch first), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != np.float32 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must hold finite float32 images, got dtype {x.dtype}")
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({len(x)},), got {y.dtype} {y.shape}")
    num_samples = check_int(num_samples, "num_samples", 1, len(x))
    builder, _ = CALIBRATION_FAILURES[kind]
    return builder(x, y, num_samples, np.random.default_rng(seed)).astype(np.float32, copy=False)
