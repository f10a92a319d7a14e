"""The fit table of the zoo: every integer variant of every zoo model against the two boards.

:func:`zoo_integer_files` reads the ``.tflite`` files :func:`qlab.compare` (and ``qlab bench``) kept
for each zoo model (:func:`qlab.workbook.pipeline.zoo_tflite_dir`); :func:`zoo_fit_table` sets them
against :data:`qlab.conversion.micro_boards.BOARDS` with :func:`qlab.conversion.micro_boards.fit_table`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from qlab.conversion.converter import KERAS3_VARIANTS, VARIANTS
from qlab.conversion.micro_boards import BOARDS, Board, fit_table
from qlab.zoo.models import check_size

if TYPE_CHECKING:
    import pandas as pd

#: The variants that keep float weights: everything else stores integers (TFLM still refuses the
#: ones that compute in float, and says so in the table).
FLOAT_VARIANTS = ("float32", "float16")
#: Every integer variant, in the results table's order (the Keras 3 ones exist for the transformer only).
INTEGER_VARIANTS: tuple[str, ...] = tuple(v for v in (*VARIANTS, *KERAS3_VARIANTS) if v not in FLOAT_VARIANTS)


def zoo_models(models: str | Sequence[str] = "all") -> list[str]:
    """``"all"``: the three CNNs and the Keras 3 transformer; or the zoo names given (checked)."""
    from qlab.workbook.pipeline import check_models
    from qlab.zoo.transformer import NAME

    return [*check_models("all"), NAME] if models == "all" else check_models(models)


def zoo_integer_files(models: str | Sequence[str] = "all", size: str = "full", seed: int = 0) -> dict[str, bytes]:
    """``{"model/variant": bytes}`` of every integer variant's file kept for the zoo models.

    A variant without a file is left out (the MobileNet v2 has no LiteRT Quantizer files, say); a
    model without any raises a FileNotFoundError naming the folder and how to make its files.
    """
    from qlab.workbook.pipeline import zoo_tflite_dir

    check_size(size)
    files: dict[str, bytes] = {}
    for model in zoo_models(models):
        folder = zoo_tflite_dir(model, size, seed)
        found = {v: folder / f"{v}.tflite" for v in INTEGER_VARIANTS if (folder / f"{v}.tflite").is_file()}
        if not found:
            raise FileNotFoundError(f"no integer .tflite file of {model!r} in {folder}: make them with "
                                    f"qlab.compare([{model!r}], size={size!r}, seed={seed}) or `qlab bench`")
        files.update({f"{model}/{variant}": path.read_bytes() for variant, path in found.items()})
    return files


def zoo_fit_table(models: str | Sequence[str] = "all", size: str = "full", seed: int = 0,
                  boards: Sequence[Board] = BOARDS) -> "pd.DataFrame":
    """:func:`qlab.conversion.micro_boards.fit_table` of :func:`zoo_integer_files`, with ``model`` and ``variant``.

    Allocation only (no image runs): seconds per file, most of it TFLM's tries at the smallest arena.
    """
    table = fit_table(zoo_integer_files(models, size, seed), boards)
    names = table.pop("file").str.split("/", n=1, expand=True)
    table.insert(0, "variant", names[1])
    table.insert(0, "model", names[0])
    return table
