"""Study ``micro_runs`` (lesson 13): every integer file of a zoo model on the microcontroller runtime.

For each integer variant the file is made as ``qlab.compare`` makes it (and kept where it keeps
them, :func:`qlab.workbook.pipeline.zoo_tflite_dir`), then TFLM either refuses it, with the reason
(:func:`qlab.conversion.micro_boards.arena_or_refusal`), or runs every test image
(:func:`qlab.conversion.micro.micro_agreement`): its accuracy, its agreement with LiteRT's default and
reference kernels, the smallest arena and the flash. :func:`zoo_fit_table` sets the recorded rows
against the boards without running TFLM again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from qlab.conversion.converter import AEQ_VARIANTS, KERAS3_VARIANTS, PTQ_VARIANTS, VARIANTS
from qlab.conversion.micro import micro_agreement
from qlab.conversion.micro_boards import BOARDS, Board, arena_or_refusal, on_boards

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The variants that keep float weights; every other variant stores integers (TFLM still refuses
#: the ones that compute in float, and the table says why).
FLOAT_VARIANTS = ("float32", "float16")
#: Every integer variant of a tf_keras zoo CNN, in the results table's order.
INTEGER_VARIANTS: tuple[str, ...] = tuple(v for v in VARIANTS if v not in FLOAT_VARIANTS)
#: The columns of the study's table that say whether a file fits a board
#: (:func:`qlab.conversion.micro_boards.on_boards`).
FIT_COLUMNS = ["model", "variant", "flash bytes", "arena bytes", "refusal"]
#: The integer variants made from the float model alone (no fine-tune to train or load).
POST_TRAINING_VARIANTS: tuple[str, ...] = tuple(v for v in (*PTQ_VARIANTS, *AEQ_VARIANTS) if v not in FLOAT_VARIANTS)


def micro_variants(model_name: str, size: str) -> list[str]:
    """The integer variants the study measures for a zoo model at a training budget.

    The three CNNs at ``full``: all of them (their fine-tunes are shipped). The transformer: the
    post-training ones and Keras 3's own (TFMOT's fine-tunes do not apply to it). A zoo model outside
    :data:`qlab.zoo.models.MODELS` (no shipped fine-tunes): the post-training ones. A smoke run: the
    converter's post-training ones, seconds in all, one of each kind of file TFLM runs or refuses.
    """
    from qlab.zoo.models import MODELS, check_size
    from qlab.zoo.transformer import NAME

    check_size(size)
    if size == "smoke":
        return [v for v in PTQ_VARIANTS if v not in FLOAT_VARIANTS]
    if model_name == NAME:
        return [*POST_TRAINING_VARIANTS, *KERAS3_VARIANTS]
    return list(INTEGER_VARIANTS if model_name in MODELS else POST_TRAINING_VARIANTS)


def integer_files(model_name: str, variants: Sequence[str], size: str, seed: int,
                  verbose: Any = 0) -> tuple[dict[str, bytes], dict[str, float]]:
    """``(files, LiteRT accuracies)`` by variant, made now as ``qlab.compare`` makes them (no latency).

    A variant the converter refuses (the transformer's int16x8, Keras 3's int8) has no file and is
    left out of both.
    """
    from qlab.workbook.pipeline import compare_encoder, compare_model, zoo_tflite_dir
    from qlab.zoo.transformer import NAME

    compare = compare_encoder if model_name == NAME else lambda *a, **k: compare_model(model_name, *a, **k)
    rows = compare(list(variants), size, seed, latency=False, verbose=verbose)
    made = {row["variant"]: row for row in rows if row.get("evaluated_with") == "litert"}
    folder = zoo_tflite_dir(model_name, size, seed)
    return ({v: (folder / f"{v}.tflite").read_bytes() for v in made},
            {v: float(row["accuracy"]) for v, row in made.items()})


def zoo_test_images(model_name: str, size: str) -> tuple["np.ndarray", "np.ndarray"]:
    """The zoo model's test images and labels at ``size`` (all 10,000 at ``full``)."""
    from qlab.zoo.models import mnist_for
    from qlab.zoo.transformer import NAME, encoder_data

    (_, _), (x, y) = encoder_data(size) if model_name == NAME else mnist_for(model_name, size)
    return x, y


def micro_row(model_bytes: bytes, x: "np.ndarray", y: "np.ndarray") -> dict[str, Any]:
    """One file on TFLM: flash, arena and refusal; for a file it runs, accuracy and agreement on ``x``."""
    arena, refusal = arena_or_refusal(model_bytes)
    row: dict[str, Any] = {"flash bytes": len(model_bytes), "arena bytes": arena, "refusal": refusal}
    if refusal is None:
        run = micro_agreement(model_bytes, x, y=y)
        row.update({"images": run.images, "micro accuracy": run.accuracy, "identical": run.identical,
                    "top-1 agreement": run.top1_agreement, "max steps": run.max_step_difference,
                    "identical to reference kernels": run.reference_identical,
                    "max steps to reference kernels": run.reference_max_step_difference})
    return row


def micro_study(model_name: str, size: str, seed: int, verbose: bool) -> "pd.DataFrame":
    """The ``micro_runs`` table: one row per integer file of the model (:func:`micro_variants`).

    Columns: ``model``, ``variant``, ``flash bytes``, ``arena bytes`` (the smallest TFLM allocates it
    in), ``refusal`` (why TFLM cannot run it, or None), ``litert accuracy``, and for the files TFLM runs
    on every test image: ``micro accuracy``, ``identical`` (share of images whose int8 outputs are
    LiteRT's exactly), ``top-1 agreement``, ``max steps``, and the same two against LiteRT's reference
    kernels. The arena comes from forked tries (:func:`qlab.conversion.micro.smallest_arena`).
    """
    import pandas as pd

    from qlab.zoo.progress import progress_iter

    files, accuracies = integer_files(model_name, micro_variants(model_name, size), size, seed, verbose)
    x, y = zoo_test_images(model_name, size)
    rows = []
    for variant in progress_iter(files, f"{model_name}: on the microcontroller runtime", unit="file",
                                 progress=verbose):
        rows.append({"model": model_name, "variant": variant, **micro_row(files[variant], x, y),
                     "litert accuracy": accuracies[variant]})
    return pd.DataFrame(rows)  # no nullable Int64: a recorded table goes through JSON


def zoo_fit_table(models: Sequence[str], size: str = "full", seed: int = 0,
                  boards: Sequence[Board] = BOARDS) -> "pd.DataFrame":
    """Every integer file of ``models`` against ``boards``: the ``micro_runs`` study set on each board.

    The study's recorded table is used when its weights match (:func:`qlab.workbook.studies.run_study`),
    so no file runs again; ``fits`` and ``why not`` come from
    :func:`qlab.conversion.micro_boards.on_boards`.
    """
    import pandas as pd

    from qlab.workbook.studies import run_study

    runs = pd.concat([run_study("micro_runs", model, size, seed, verbose=False).table for model in models],
                     ignore_index=True)
    return on_boards(runs[FIT_COLUMNS], boards)


def micro_figures(table: "pd.DataFrame") -> dict[str, Any]:
    """The numbers of a ``micro_runs`` table the benchmark's goals check: how many files run, how closely, and how
    many fit each of :data:`~qlab.conversion.micro_boards.BOARDS` (``fitting``, by board name)."""
    ran = table[table["refusal"].isna()]
    fits = on_boards(table[FIT_COLUMNS], BOARDS)
    fitting = {board.name: int(fits.loc[fits["board"] == board.name, "fits"].sum()) for board in BOARDS}
    if ran.empty:
        return {"files": len(table), "ran": 0, "fitting": fitting}
    return {"files": len(table), "ran": len(ran), "fitting": fitting,
            "lowest top-1 agreement": float(ran["top-1 agreement"].min()),
            "lowest identical to reference kernels": float(ran["identical to reference kernels"].min()),
            "most steps to reference kernels": int(ran["max steps to reference kernels"].max()),
            "largest accuracy gap to litert": float((ran["micro accuracy"] - ran["litert accuracy"]).abs().max())}
