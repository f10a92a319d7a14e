"""Exercises the learner writes, and the checks that grade them (``qlab.check``).

An exercise is a code cell of a lesson, right after the concept it practises::

    def my_representative_dataset():
        # YOUR CODE STARTS HERE
        ...
        # YOUR CODE ENDS HERE


    qlab.check.exercise("04.representative", my_representative_dataset, model=model, x_calib=x_calib)

:func:`exercise` runs the learner's answer against an independent reference (TensorFlow's
own op, the converter's file, a LiteRT run) and prints one line: ``Correct``, a hint that
names what is wrong without giving the answer, or ``not done yet`` while the blank
(``...``) is still there. It never raises for a wrong or unfinished answer, so Run All goes
on to the end, and no later cell of a lesson uses what the learner wrote.

The checks live in one module per lesson (``lesson01``, ``lesson04``, ...); the
solutions are apart, in ``solutions/`` (:mod:`qlab.workbook.exercise_cells`).
"""

from __future__ import annotations

import dis
import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: What a check returns for a correct answer; anything else it returns is the hint.
CORRECT = None

STATUSES = ("not done", "correct", "wrong")


class NotDone(Exception):
    """Raised by a check when the learner's answer is still the blank."""


class Hint(Exception):
    """Raised from deep inside a check: its message is the hint, as if the check had returned it."""


@dataclass(frozen=True)
class Exercise:
    """One checked exercise: its id (``"04.representative"``), what it asks, and its check."""

    id: str
    title: str
    check: Callable[..., str | None]


@dataclass(frozen=True)
class Outcome:
    """The grade of one answer: ``status`` is one of :data:`STATUSES`; ``message`` is what the learner reads."""

    id: str
    status: str
    message: str

    def __repr__(self) -> str:
        return self.message


_REGISTRY: dict[str, Exercise] = {}


def exercise_check(exercise_id: str, title: str) -> Callable[[Callable], Callable]:
    """Register ``check`` as the grader of ``exercise_id`` (used by the ``lessonNN`` modules).

    A check takes the learner's answer (and the lesson's context as keywords), raises
    :class:`NotDone` for a blank, and returns :data:`CORRECT` or a hint.
    """
    def register(check: Callable) -> Callable:
        if exercise_id in _REGISTRY:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        _REGISTRY[exercise_id] = Exercise(exercise_id, title, check)
        return check

    return register


@functools.cache
def _import_lessons() -> None:
    """Import every ``lessonNN`` module once: importing registers its checks."""
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{module.name}")


def exercises() -> dict[str, Exercise]:
    """Every registered exercise by id, in lesson order."""
    _import_lessons()
    return dict(sorted(_REGISTRY.items()))


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise ``exercise_id``; a ValueError lists the valid ids."""
    known = exercises()
    if exercise_id not in known:
        raise ValueError(f"no exercise {exercise_id!r}; the exercises are: {', '.join(known)}")
    return known[exercise_id]


def one_number(value: Any, name: str) -> float:
    """``value`` as one finite float; a TypeError or ValueError that names ``name`` otherwise."""
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be one number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def is_blank(value: Any) -> bool:
    """Whether ``value`` is still the exercise's blank: ``...`` or None."""
    return value is Ellipsis or value is None


def is_blank_function(function: Callable) -> bool:
    """Whether ``function``'s body is still the exercise's blank (``...``): it does nothing but return None."""
    allowed = {("RESUME", 0), ("NOP", None), ("LOAD_CONST", None), ("RETURN_VALUE", None), ("RETURN_CONST", None)}
    try:
        return all((i.opname, i.argval if i.opname != "RESUME" else 0) in allowed
                   for i in dis.get_instructions(function))
    except TypeError:  # not a Python function: something the learner wrote
        return False


def grade(exercise_id: str, *answer: Any, **context: Any) -> Outcome:
    """Grade ``answer`` to ``exercise_id`` without printing (what :func:`exercise` prints)."""
    item = get_exercise(exercise_id)
    label = f"Exercise {exercise_id}"
    try:
        if any(is_blank(a) for a in answer):
            raise NotDone
        hint = item.check(*answer, **context)
    except Hint as found:
        hint = str(found)
    except NotDone:
        return Outcome(exercise_id, "not done",
                       f"{label}: not done yet. Write your code between YOUR CODE STARTS HERE and "
                       "YOUR CODE ENDS HERE, then run this cell again.")
    except Exception as error:  # the learner's code failed: say how, and carry on
        return Outcome(exercise_id, "wrong",
                       f"{label}: not yet. Running your answer raised {type(error).__name__}: {error}")
    if hint is CORRECT:
        return Outcome(exercise_id, "correct", f"{label}: Correct.")
    return Outcome(exercise_id, "wrong", f"{label}: not yet. Hint: {hint}")


_ATTEMPTS: dict[str, int] = {}


def exercise(exercise_id: str, *answer: Any, **context: Any) -> None:
    """Grade the learner's answer and print the verdict (the cell's visible check).

    Args:
        exercise_id: the exercise, ``"<lesson>.<name>"`` as the cell's comment says.
        *answer: what the learner wrote (values or functions), as the cell passes them.
        **context: what the check needs from the lesson (the model, the data).

    Each attempt is also recorded for the notebook tests (:func:`qlab.record`, invisible).
    """
    from qlab.workbook.notebook import record

    outcome = grade(exercise_id, *answer, **context)
    print(outcome.message)
    attempt = _ATTEMPTS[exercise_id] = _ATTEMPTS.get(exercise_id, 0) + 1
    record(f"exercise {exercise_id} #{attempt}", {"status": outcome.status, "message": outcome.message})
