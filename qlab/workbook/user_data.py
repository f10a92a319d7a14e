"""Checks on the model and data you bring to :func:`qlab.compare_keras_model`, before any work.

A NaN image is quantized without a word and labels 10..19 for a 10-class model give
0% accuracy: both are a silent wrong number. Every check here instead raises a
one-line ValueError (a TypeError where the kind of object is wrong) that names the
argument (``x_train``, ``y_test``, ``model``, ...), shows the offending value and
says what would be valid. Only numpy is used, and a model is read only through its
``name``, ``input_shape`` and ``output_shape`` (or ``inputs``/``outputs``), so a
Keras 2 and a Keras 3 model are checked alike, and the checks cost a few passes
over the arrays (tens of milliseconds for MNIST), not a prediction.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: The four arrays of a data set, in the order of ``((x_train, y_train), (x_test, y_test))``.
DATA_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Models whose input range qlab knows because it made their data: name -> (input shape, classes).
#: ``example_cnn`` is :func:`qlab.zoo.models.example_user_model`; the others are the zoo's,
#: named as keras.applications names a MobileNet (alpha, then input size).
KNOWN_MODELS = {"mnist_cnn": ((28, 28, 1), 10), "example_cnn": ((28, 28, 1), 10),
                "mobilenet_0.50_32": ((32, 32, 1), 10), "mobilenetv2_1.00_32": ((32, 32, 1), 10)}
#: What those models were trained on (:func:`qlab.zoo.models.preprocess`).
KNOWN_RANGE = (0.0, 1.0)
KNOWN_RANGE_SOURCE = "MNIST scaled by qlab.mnist_for"
#: How far x_test may reach beyond x_train's values, as a share of x_train's span:
#: calibration sees only x_train, so test values far beyond it are clipped by every int8 file.
TEST_RANGE_SLACK = 0.5
#: Rounding room when checking a range that is stated (0.99999994 is in [0, 1]).
RANGE_TOLERANCE = 1e-5


def check_dataset(model: Any, data: Any,
                  input_range: tuple[float, float] | None = None) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                            tuple[np.ndarray, np.ndarray]]:
    """``data`` as numpy arrays that fit ``model``, or a one-line error naming what does not.

    Args:
        model: a classifier with one input and one output of class scores, shape (batch, classes).
        data: ``((x_train, y_train), (x_test, y_test))`` or a mapping with those four keys
            (such as ``np.load("data.npz")``).
        input_range: ``(low, high)`` the model was trained on; every image value must lie in
            it. Default: qlab's [0, 1] for its own models, else x_test must stay near x_train's range.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` as arrays (not copied when already arrays).
    """
    input_shape, classes = model_signature(model)
    stated, why = _trained_range(model, input_shape, classes, input_range)
    x_train, y_train, x_test, y_test = unpack_data(data)
    x_train = check_images(x_train, "x_train", input_shape, model_name(model))
    x_test = check_images(x_test, "x_test", input_shape, model_name(model))
    y_train = check_labels(y_train, "y_train", len(x_train), classes)
    y_test = check_labels(y_test, "y_test", len(x_test), classes)
    train_span, test_span = value_span(x_train), value_span(x_test)
    if stated is not None:
        check_within("x_train", train_span, stated, why)
        check_within("x_test", test_span, stated, why)
    else:
        check_test_near_train(train_span, test_span)
    return (x_train, y_train), (x_test, y_test)


def model_name(model: Any) -> str:
    """The model's name for messages (``'model'`` if it has none)."""
    return str(getattr(model, "name", "model"))


def model_signature(model: Any) -> tuple[tuple[int | None, ...], int]:
    """``(input shape without the batch axis, classes)``, or an error if the model is no classifier."""
    input_shape, output_shape = _shape(model, "input"), _shape(model, "output")
    if len(output_shape) != 2:
        raise ValueError(
            f"model {model_name(model)!r} outputs shape {output_shape}; qlab needs one score per "
            f"class for each image, shape (batch, classes) - end the model with e.g. "
            f"GlobalAveragePooling2D() or Flatten() and Dense(classes)")
    classes = output_shape[1]
    if classes is None or classes < 2:
        raise ValueError(
            f"model {model_name(model)!r} outputs {classes} score(s) per image (shape "
            f"{output_shape}); accuracy needs one score per class, at least 2 (e.g. Dense(2) "
            f"with softmax or logits instead of one sigmoid output)")
    return tuple(input_shape[1:]), int(classes)


def _shape(model: Any, which: str) -> tuple[int | None, ...]:
    """``model.input_shape`` / ``output_shape`` as a tuple (Keras 3: from ``inputs``/``outputs``)."""
    try:
        shape = getattr(model, f"{which}_shape")
    except (AttributeError, ValueError, RuntimeError):  # Keras raises these for unbuilt models
        tensors = getattr(model, f"{which}s", None)
        shape = [tuple(t.shape) for t in tensors] if tensors else None
    if shape is None:
        raise TypeError(f"model must be a built Keras classifier with an {which} shape, got "
                        f"{type(model).__name__} without one")
    if isinstance(shape, list) and len(shape) == 1:
        shape = shape[0]
    if isinstance(shape, (list, dict)):
        raise ValueError(f"model {model_name(model)!r} has {len(shape)} {which}s; qlab compares "
                         f"models with one image {which} (got {which} shapes {list(shape)})")
    return tuple(None if d is None else int(d) for d in shape)


def unpack_data(data: Any) -> tuple[Any, Any, Any, Any]:
    """``(x_train, y_train, x_test, y_test)`` from nested pairs or a mapping with those keys."""
    if isinstance(data, Mapping) or hasattr(data, "files"):  # np.load(.npz) gives an NpzFile
        keys = list(getattr(data, "files", None) or data.keys())
        missing = [k for k in DATA_KEYS if k not in keys]
        if missing:
            present = ", ".join(map(str, keys)) or "no keys"
            raise ValueError(f"data has no {', '.join(missing)} (it has {present}); it needs the "
                             f"arrays {', '.join(DATA_KEYS)}")
        return tuple(data[k] for k in DATA_KEYS)
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError(f"data must be ((x_train, y_train), (x_test, y_test)) or a mapping with "
                         f"keys {', '.join(DATA_KEYS)}, got {type(data).__name__}") from None
    return x_train, y_train, x_test, y_test


def load_dataset_file(path: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray],
                                                       tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` from a ``.npz`` file, or a one-line error naming it.

    For ``qlab compare --data FILE``: the file is read whole (no pickles) and
    :func:`check_dataset` then checks the arrays against the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}; give a .npz holding {', '.join(DATA_KEYS)} "
                                f"(np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...))")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise ValueError("it holds one array (a .npy), not named arrays")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise ValueError(f"{path} is not a readable .npz of arrays ({reason}); save one with "
                         f"np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    missing = [key for key in DATA_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path} has no {', '.join(missing)} (it has {', '.join(arrays) or 'no arrays'}); "
                         f"it needs the arrays {', '.join(DATA_KEYS)}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def numeric_array(value: Any, argument: str) -> np.ndarray:
    """``value`` as a numpy array of numbers (bool, int, float), or a TypeError naming ``argument``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise TypeError(f"{argument} must be a numeric array, got {type(value).__name__} that numpy "
                        f"cannot turn into one ({error})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must be a numeric array, got dtype {array.dtype} "
                        f"({type(value).__name__}); give numbers, not {array.dtype.name} values")
    return array


def check_images(x: Any, argument: str, input_shape: tuple[int | None, ...],
                 model: str = "model") -> np.ndarray:
    """``x`` as a non-empty, finite float32 array of images shaped like the model input."""
    x = numeric_array(x, argument)
    if x.dtype != np.float32:
        raise ValueError(f"{argument} must be float32 (as the model sees it), got {x.dtype}; convert "
                         f"it with {argument}.astype('float32'), scaled as the model was trained")
    if x.ndim == 0:
        raise ValueError(f"{argument} must be an array of images, one per row, got the single "
                         f"value {x.item()!r}")
    if len(x) == 0:
        raise ValueError(f"{argument} is empty (shape {x.shape}); it needs at least one example")
    if not _fits(x.shape[1:], input_shape):
        hint = (f"; add the channel axis with {argument}[..., None]"
                if _fits(x.shape[1:] + (1,), input_shape) else "")
        raise ValueError(f"{argument} examples have shape {x.shape[1:]}, but the model {model!r} "
                         f"expects {input_shape} (None: any size){hint}")
    check_finite_images(x, argument)
    return x


def _fits(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    """Whether an example shape matches the model's, None matching any size."""
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


def check_finite_images(x: np.ndarray, argument: str) -> None:
    """Raise naming the images that hold NaN or inf (a cheap min/max pass when there are none)."""
    if np.isfinite(x.min()) and np.isfinite(x.max()):  # NaN propagates, inf shows at an end
        return
    bad = ~np.isfinite(x)
    images = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
    nan = int(np.isnan(x).sum())
    raise ValueError(f"{argument} holds {nan} NaN and {int(bad.sum()) - nan} inf value(s) in "
                     f"{len(images)} of {len(x)} image(s) (first: index {images[0]}); every value "
                     f"must be finite - drop or repair those images")


def check_labels(y: Any, argument: str, count: int, classes: int) -> np.ndarray:
    """``y`` as ``count`` integer class labels in 0..classes-1, or an error saying what is wrong."""
    y = numeric_array(y, argument)
    if y.ndim == 2 and y.shape == (count, classes):
        raise ValueError(f"{argument} has shape {y.shape}, like one-hot labels or scores; give one "
                         f"class index per image, e.g. {argument}.argmax(axis=1)")
    if y.shape != (count,) or y.dtype.kind not in "iu":
        hints = ([f"flatten it with {argument}.reshape(-1)"] if y.size == count and y.ndim > 1 else [])
        hints += [f"convert it with {argument}.astype('int64')"] if _whole_numbers(y) else []
        raise ValueError(f"{argument} must be integer class labels of shape ({count},), one per "
                         f"image, got {y.dtype} {y.shape}" + "".join(f"; {h}" for h in hints))
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        outside = int(np.count_nonzero((y < 0) | (y >= classes)))
        shift = (f"; if they are numbered from {low}, subtract {low}"
                 if 0 < low and high - low < classes else "")
        raise ValueError(f"{argument} holds labels {low}..{high} ({outside} of {count} outside) but "
                         f"the model has {classes} outputs (classes 0..{classes - 1}); valid labels "
                         f"are 0..{classes - 1}{shift}")
    return y


def _whole_numbers(y: np.ndarray) -> bool:
    """Whether a float label array holds only whole numbers (3.0), so a cast would fix it."""
    return y.dtype.kind == "f" and y.size > 0 and bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))


def value_span(x: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of ``x`` as Python floats."""
    return float(x.min()), float(x.max())


def check_within(argument: str, span: tuple[float, float], allowed: tuple[float, float],
                 why: str) -> None:
    """Raise unless ``span`` (an array's min, max) lies in ``allowed``, the range the model was trained on.

    ``why`` says how the range is known, e.g. ``"input_range"``.
    """
    low, high = allowed
    if span[0] >= low - RANGE_TOLERANCE and span[1] <= high + RANGE_TOLERANCE:
        return
    hint = ", e.g. divide 0..255 pixels by 255" if (low, high) == (0.0, 1.0) and span[1] > 2 else ""
    raise ValueError(f"{argument} values span {span[0]:.4g}..{span[1]:.4g}, but the model was "
                     f"trained on values in [{low:g}, {high:g}] ({why}); scale {argument} the same "
                     f"way{hint}")


def check_test_near_train(train: tuple[float, float], test: tuple[float, float]) -> None:
    """Raise if x_train is constant or x_test reaches far beyond x_train's range (scaled differently)."""
    width = train[1] - train[0]
    if width == 0:
        raise ValueError(f"x_train holds the single value {train[0]:.4g} everywhere; calibration and "
                         f"fine-tuning need real training images")
    slack = TEST_RANGE_SLACK * width
    if test[0] < train[0] - slack or test[1] > train[1] + slack:
        raise ValueError(f"x_test values span {test[0]:.4g}..{test[1]:.4g}, far outside x_train's "
                         f"{train[0]:.4g}..{train[1]:.4g} (more than {TEST_RANGE_SLACK:.0%} of its "
                         f"width beyond it); scale both the way the model was trained, or pass "
                         f"input_range=(low, high)")


def check_input_range(input_range: Any) -> tuple[float, float]:
    """``input_range`` as ``(low, high)`` floats with low < high, or a ValueError."""
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError(f"input_range must be (low, high), the values the model was trained on, "
                         f"e.g. (0, 1); got {input_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"input_range must be finite with low < high, e.g. (0, 1); got {input_range!r}")
    return low, high


def known_input_range(model: Any, input_shape: tuple[int | None, ...],
                      classes: int) -> tuple[float, float] | None:
    """[0, 1] for a model qlab trained (its name, input shape and classes all match), else None."""
    known = KNOWN_MODELS.get(model_name(model))
    return KNOWN_RANGE if known == (input_shape, classes) else None


def _trained_range(model: Any, input_shape: tuple[int | None, ...], classes: int,
                   input_range: Any) -> tuple[tuple[float, float] | None, str]:
    """``(range to enforce or None, how to describe it)``: the stated one, else the one qlab knows."""
    if input_range is not None:
        low, high = check_input_range(input_range)
        return (low, high), "input_range"
    known = known_input_range(model, input_shape, classes)
    return known, f"qlab's {model_name(model)!r} learned from {KNOWN_RANGE_SOURCE}"
