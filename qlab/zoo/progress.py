"""Progress bars for qlab's long work: training, QAT fine-tuning and comparisons.

Each bar is a ``tqdm.auto`` bar - a widget in Jupyter, a text bar in a terminal - with
the current step, the rate and an ETA. It is shown at every Keras ``verbose``:
``verbose`` governs Keras's own log, not qlab's bar.

- ``QLAB_PROGRESS=0`` (or ``progress=False`` where a function takes it) turns the bars
  off, e.g. in tests that assert what is printed.
- In a notebook kernel started by ``qlab run`` (which sets ``QLAB_PROGRESS_LINES=1``),
  each bar also writes a plain line every :data:`LINE_INTERVAL_SECONDS` to the
  kernel's terminal, so ``make run`` says what is being trained, how far it is and how
  long it will take; the bar in the notebook stays a widget.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
from typing import Any, Iterable, Iterator, TextIO, TypeVar

from qlab.numerics.validate import check_bool

#: Environment variable that turns every qlab progress bar off when "0" (or false/no/off).
PROGRESS_ENV = "QLAB_PROGRESS"
#: Environment variable ``qlab run`` sets for its kernels: also print progress as plain lines.
LINES_ENV = "QLAB_PROGRESS_LINES"
#: Seconds between two plain progress lines (a bar also prints one when it starts and ends).
LINE_INTERVAL_SECONDS = 10.0

T = TypeVar("T")


def say(verbose: bool, message: str) -> None:
    """Print one progress line of a long study when ``verbose`` (flushed: it shows at once)."""
    if verbose:
        print(message, flush=True)


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show a bar: ``progress`` if given, else not when ``QLAB_PROGRESS`` is 0/false/no/off."""
    if progress is not None:
        return check_bool(progress, "progress")
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _LineWriter(io.TextIOBase):
    """A file for tqdm that turns each redraw (``\\r...``) into one whole line on ``stream``.

    Whole lines, written at once, neither fight with the runner's own bar on the same
    terminal nor get split by the filter that ``qlab run`` puts on the kernel's stderr.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        for part in re.split(r"[\r\n]|\x1b\[A", text):  # \x1b[A: tqdm moving up to a nested bar
            # a line that only repeats the last one with a later time (a bar's close) is left out
            unchanged = re.sub(r"\[[^,\]]*(, [^,\]]*)?", "[", part.strip())
            if part.strip() and unchanged != self.last:
                self.stream.write(part.rstrip() + "\n")
                self.stream.flush()
                self.last = unchanged
        return len(text)


@functools.cache
def _kernel_terminal() -> TextIO | None:
    """The terminal behind a Jupyter kernel's stderr, or None outside a kernel.

    ipykernel sends file descriptor 2 into the notebook and keeps a copy of the
    original, which its ``sys.stderr.fileno()`` returns; without that copy (ipykernel
    does not redirect under pytest) descriptor 2 is still the original.
    """
    if not type(sys.stderr).__module__.startswith("ipykernel"):
        return None
    try:
        descriptor = sys.stderr.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        descriptor = 2
    return open(os.dup(descriptor), "w", encoding="utf-8", errors="replace")


def _line_stream() -> TextIO | None:
    if os.environ.get(LINES_ENV) != "1":
        return None
    terminal = _kernel_terminal()
    return _LineWriter(terminal) if terminal is not None else None


class ProgressBar:
    """One task's progress bar (``tqdm.auto``), plus plain lines under ``qlab run``.

    Use it as a context manager, or call :meth:`close`. When progress is off it does
    nothing, so callers never branch on it.
    """

    def __init__(self, total: int | None, description: str, unit: str = "step",
                 progress: bool | None = None):
        self.bars: list[Any] = []
        if not progress_enabled(progress):
            return
        from tqdm.auto import tqdm

        self.bars.append(tqdm(total=total, desc=description, unit=unit, leave=None,
                              dynamic_ncols=True))
        lines = _line_stream()
        if lines is not None:
            from tqdm.std import tqdm as text_tqdm

            self.bars.append(text_tqdm(total=total, desc=description, unit=unit, file=lines,
                                       mininterval=LINE_INTERVAL_SECONDS, ascii=True))

    def update(self, steps: int = 1) -> None:
        """Advance by ``steps``."""
        for bar in self.bars:
            bar.update(steps)

    def show(self, status: str) -> None:
        """Show ``status`` (the epoch, the variant, a loss) after the bar, and redraw now."""
        for bar in self.bars:
            bar.set_postfix_str(status)

    def close(self) -> None:
        """Finish the bar: an outermost bar stays with its final count and time, a nested one goes."""
        for bar in self.bars:
            bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProgressBar({self.bars[0]!s})" if self.bars else "ProgressBar(off)"


def progress_iter(items: Iterable[T], description: str, unit: str = "item",
                  progress: bool | None = None) -> Iterator[T]:
    """Yield ``items`` while a bar counts them and shows which one is being worked on.

    The count advances when the loop body for an item has finished, so the ETA is the
    time the remaining items will take at the pace so far.
    """
    items = list(items)
    with ProgressBar(len(items), description, unit, progress) as bar:
        for item in items:
            bar.show(str(item))
            yield item
            bar.update()


@functools.cache
def _fit_progress_class(keras3: bool = False) -> type:
    """The FitProgress callback class on tf_keras's ``Callback`` (or Keras 3's, for ``import keras`` models)."""
    if keras3:
        import keras
    else:
        from qlab.zoo.keras2 import keras

    class FitProgress(keras.callbacks.Callback):
        """A Keras callback that moves a :class:`ProgressBar` once per training batch.

        It only reads the step counts Keras passes it and uses no random numbers, so
        training with it gives the same weights as without it.
        """

        def __init__(self, description: str, progress: bool | None = None):
            super().__init__()
            self.description, self.progress = description, progress
            self.bar = ProgressBar(None, description, progress=False)
            self.steps_in_epoch = 0
            # the loss tensors stay on the device between batches; only epoch ends are read
            self._supports_tf_logs = True

        def on_train_begin(self, logs: dict | None = None) -> None:
            epochs, steps = self.params.get("epochs") or 1, self.params.get("steps")
            self.bar = ProgressBar(epochs * steps if steps else None, self.description,
                                   progress=self.progress)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.steps_in_epoch = 0
            self.bar.show(f"epoch {epoch + 1}/{self.params.get('epochs') or 1}")

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # ``batch`` is the last step run: with steps_per_execution > 1 Keras calls once per run
            self.bar.update(batch + 1 - self.steps_in_epoch)
            self.steps_in_epoch = batch + 1

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            scores = ", ".join(f"{key} {float(value):.4g}" for key, value in (logs or {}).items()
                               if key in ("loss", "accuracy"))
            self.bar.show(f"epoch {epoch + 1}/{self.params.get('epochs') or 1}"
                          + (f", {scores}" if scores else ""))

        def on_train_end(self, logs: dict | None = None) -> None:
            self.bar.close()

    return FitProgress


def fit_progress(description: str, progress: bool | None = None) -> list[Any]:
    """``[a FitProgress callback]`` for ``model.fit(callbacks=...)``, or ``[]`` when progress is off.

    The bar counts training steps over all epochs (``epochs x batches``) and shows the
    epoch and, at its end, the loss and accuracy.
    """
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {description!r}")
    if not progress_enabled(progress):
        return []
    return [_fit_progress_class()(description, progress)]


def keras3_fit_progress(description: str, progress: bool | None = None) -> list[Any]:
    """:func:`fit_progress` for a Keras 3 model (``import keras``): the same bar on Keras 3's ``Callback``.

    Keras 3 refuses tf_keras callbacks, so a model made with ``import keras`` needs this one.
    Taught in ``12_your_own_model``.
    """
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {description!r}")
    if not progress_enabled(progress):
        return []
    return [_fit_progress_class(keras3=True)(description, progress)]
