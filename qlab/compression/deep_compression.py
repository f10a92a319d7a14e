"""Deep Compression with TFMOT: prune, cluster, keep both through QAT, quantize, compress.

Han et al.'s pipeline (pruning, trained quantization, Huffman coding) in TensorFlow's terms:
magnitude pruning (:mod:`qlab.compression.prune`), weight clustering (:mod:`qlab.compression.cluster`),
int8 quantization after training or with QAT that keeps the zeros and the clusters
(TFMOT's collaborative optimization), and a general-purpose compressor over the ``.tflite``
(:mod:`qlab.numerics.compression`).

The zoo variants, each an int8 file measured by :func:`qlab.workbook.pipeline.compare`:

- ``pruned_int8``: pruned float model, then post-training int8 (per channel);
- ``clustered_int8``: clustered float model, then post-training int8;
- ``pqat_int8``: pruned, then pruning-preserving QAT;
- ``cqat_int8``: clustered, then cluster-preserving QAT;
- ``pcqat_int8``: pruned, clustered with the zeros kept, then sparsity- and cluster-preserving QAT.

Each rests on a chain of stages (:data:`STAGES`): ``pruned`` and ``clustered`` fine-tune the
float model, ``pruned_clustered`` clusters the pruned one, and the three QAT stages fine-tune
one of those. ``tuned`` is the control: the float model fine-tuned exactly as long and as fast
as ``pruned``, but with nothing removed, so "pruning cost x points" is measured against "more
training changed y points". :func:`run_stage` makes a stage from its base model;
:func:`load_stage` makes it for a zoo model and caches it like the QAT fine-tunes (the
full-size ones are shipped in ``data/models/``).

Taught in ``09_deep_compression``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from qlab.conversion.converter import DC_VARIANTS
from qlab.numerics.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

#: Stage -> the stage it starts from (None: the float model).
STAGES: dict[str, str | None] = {
    "tuned": None, "pruned": None, "clustered": None, "pruned_clustered": "pruned",
    "pqat": "pruned", "cqat": "clustered", "pcqat": "pruned_clustered",
}
#: Variant -> the stage whose model it converts.
VARIANT_STAGES = {"pruned_int8": "pruned", "clustered_int8": "clustered", "pqat_int8": "pqat",
                  "cqat_int8": "cqat", "pcqat_int8": "pcqat"}
QAT_STAGES = ("pqat", "cqat", "pcqat")
#: Activation ranges of the QAT stages start from the min/max of this many training images.
CALIBRATED_START_IMAGES = 1000


@dataclass(frozen=True)
class Recipe:
    """How hard to compress: the share of each prunable kernel set to zero, and the clusters.

    ``sparsity`` is TFMOT's ``PolynomialDecay`` target (from 0 at step 0 to ``sparsity`` at
    :attr:`Budget.prune_until` of the fine-tune); ``clusters`` the distinct values each
    clustered kernel keeps (zero counts as one of them after pruning).
    """

    sparsity: float = 0.75
    clusters: int = 8
    centroid_init: str = "kmeans_plus_plus"
    per_channel: bool = False

    def __post_init__(self) -> None:
        from qlab.compression.cluster import MAX_CLUSTERS, centroid_initialization
        from qlab.numerics.sparsity import check_sparsity

        check_sparsity(self.sparsity, "sparsity")
        check_int(self.clusters, "clusters", 3, MAX_CLUSTERS)
        centroid_initialization(self.centroid_init)


@dataclass(frozen=True)
class Budget:
    """How long each stage fine-tunes.

    ``samples`` training images (None: all) for ``prune_epochs`` of pruning (the ``tuned``
    control trains as long) and ``cluster_epochs`` of clustering; the pruning schedule
    reaches its target at ``prune_until`` of the pruning steps, updating the masks every
    ``frequency`` steps (fewer when the fine-tune is too short for one update), and the rest
    of the fine-tune recovers. The QAT stages fine-tune
    one epoch on ``qat_samples`` images.
    """

    prune_epochs: int
    cluster_epochs: int
    qat_samples: int
    samples: int | None
    frequency: int
    prune_until: float = 0.6
    batch_size: int = 128


#: The recipe of each zoo model; a model you bring gets :data:`DEFAULT_RECIPE`.
RECIPES = {"mnist_cnn": Recipe(0.75, 8), "mobilenet_v1": Recipe(0.75, 8), "mobilenet_v2": Recipe(0.75, 8)}
DEFAULT_RECIPE = Recipe()
BUDGETS = {"full": Budget(prune_epochs=3, cluster_epochs=1, qat_samples=30_000, samples=None, frequency=100),
           "smoke": Budget(prune_epochs=1, cluster_epochs=1, qat_samples=256, samples=512, frequency=1)}


def user_budget(fine_tune_samples: int) -> Budget:
    """The full budget on ``fine_tune_samples`` images, for a model you bring (``compare_keras_model``)."""
    samples = check_int(fine_tune_samples, "fine_tune_samples", 1, 1 << 31)
    return replace(BUDGETS["full"], samples=samples, qat_samples=samples)


def check_stage(stage: str) -> str:
    """``stage`` if it is one of :data:`STAGES`, else a ValueError listing them."""
    if stage not in STAGES:
        raise ValueError(f"unknown Deep Compression stage {stage!r}; valid: {', '.join(STAGES)}")
    return stage


def chain(stage: str) -> list[str]:
    """The stages that lead to ``stage``, first to last: ``chain("pcqat")`` is pruned, pruned_clustered, pcqat."""
    stages = [check_stage(stage)]
    while STAGES[stages[0]] is not None:
        stages.insert(0, STAGES[stages[0]])
    return stages


def run_stage(stage: str, base: Any, x: np.ndarray, y: np.ndarray, recipe: Recipe = DEFAULT_RECIPE,
              budget: Budget = BUDGETS["full"], seed: int = 0, verbose: int | str = 0,
              model: Any = None, description: str = "") -> tuple[Any, dict[str, Any]]:
    """Make ``stage`` from ``base`` (the float model, or the stage :data:`STAGES` names).

    Args:
        stage: one of :data:`STAGES`.
        base: the model it starts from; not changed.
        x, y: training images and labels (``budget.samples`` of them are used).
        model: for the QAT stages, the QAT model to fine-tune in place (made by
            :func:`qat_model` from ``base``); None makes it here.
        description: the progress bar's name.

    Returns:
        ``(model, info)``: a plain Keras model (``tuned``, ``pruned``, ``clustered``,
        ``pruned_clustered``) or a fine-tuned QAT model, and what the fine-tune measured.
    """
    check_stage(stage)
    x, y = (x, y) if budget.samples is None else (x[:budget.samples], y[:budget.samples])
    if not len(x):
        raise ValueError("x is empty: a Deep Compression stage needs training images")
    description = description or f"{stage} fine-tune"
    if stage in QAT_STAGES:
        return _qat_stage(stage, base, x, y, budget, seed, verbose, model, description)
    if stage in ("tuned", "pruned"):
        return _pruning_stage(stage, base, x, y, recipe, budget, seed, verbose, description)
    from qlab.compression import cluster

    wrapped = cluster.cluster_model(base, recipe.clusters, recipe.centroid_init, recipe.per_channel,
                                    preserve_sparsity=(stage == "pruned_clustered"))
    return cluster.fine_tune_clustered(wrapped, x, y, budget.cluster_epochs, budget.batch_size, seed=seed,
                                       description=description, verbose=verbose)


def _qat_stage(stage: str, base: Any, x: np.ndarray, y: np.ndarray, budget: Budget, seed: int,
               verbose: int | str, model: Any, description: str) -> tuple[Any, dict[str, Any]]:
    """PQAT, CQAT or PCQAT: one epoch on ``budget.qat_samples`` images from the data's activation ranges."""
    from qlab.qat.training import fine_tune
    from qlab.qat.ranges import start_from_data

    model = qat_model(stage, base) if model is None else model
    start_from_data(model, base, x[:CALIBRATED_START_IMAGES])
    info = fine_tune(model, x[:budget.qat_samples], y[:budget.qat_samples], 1, seed=seed, verbose=verbose,
                     description=description)
    return model, info


def _pruning_stage(stage: str, base: Any, x: np.ndarray, y: np.ndarray, recipe: Recipe, budget: Budget,
                   seed: int, verbose: int | str, description: str) -> tuple[Any, dict[str, Any]]:
    """``pruned``, or its control ``tuned``: the same optimizer, rate, epochs and batches with nothing pruned."""
    from qlab.compression import prune
    from qlab.zoo.models import copy_model
    from qlab.qat.training import fine_tune

    if stage == "tuned":
        tuned = copy_model(base)
        info = fine_tune(tuned, x, y, budget.prune_epochs, budget.batch_size, prune.PRUNE_LEARNING_RATE,
                         seed=seed, verbose=verbose, description=description)
        return tuned, info
    until = max(1, int(budget.prune_epochs * math.ceil(len(x) / budget.batch_size) * budget.prune_until))
    frequency = min(budget.frequency, until)
    wrapped = prune.prune_model(base, recipe.sparsity, end_step=prune.pruning_end_step(until, frequency),
                                frequency=frequency)
    return prune.fine_tune_pruned(wrapped, x, y, budget.prune_epochs, budget.batch_size, seed=seed,
                                  verbose=verbose, description=description)


def qat_model(stage: str, base: Any) -> Any:
    """The TFMOT collaborative-optimization QAT model of a QAT stage, before fine-tuning.

    ``pqat``: :func:`qlab.compression.prune.quantize_preserving_sparsity`; ``cqat`` and ``pcqat``:
    :func:`qlab.compression.cluster.quantize_preserving_clusters` (``pcqat`` keeps the zeros too).
    """
    from qlab.compression import cluster, prune

    if stage == "pqat":
        return prune.quantize_preserving_sparsity(base)
    if stage in ("cqat", "pcqat"):
        return cluster.quantize_preserving_clusters(base, preserve_sparsity=(stage == "pcqat"))
    raise ValueError(f"{stage!r} is not a QAT stage; QAT stages: {', '.join(QAT_STAGES)}")


def stage_config(name: str, stage: str, size: str = "full", seed: int = 0) -> dict[str, Any]:
    """Everything that determines a zoo model's stage (its cache key), its base stages included."""
    from qlab.zoo.models import check_size, get_spec, training_config
    from qlab.compression.prune import PRUNE_LEARNING_RATE
    from qlab.compression.cluster import CLUSTER_LEARNING_RATE
    from qlab.qat.training import QAT_LEARNING_RATE

    get_spec(name)
    check_size(size)
    stages = chain(stage)
    return {**training_config(name, size, seed), "deep_compression": stages,
            "recipe": asdict(RECIPES[name]), "budget": asdict(BUDGETS[size]),
            "learning_rates": {"prune": PRUNE_LEARNING_RATE, "cluster": CLUSTER_LEARNING_RATE,
                               "qat": QAT_LEARNING_RATE},
            "qat_start": f"minmax ranges of {CALIBRATED_START_IMAGES} training images"}


def stage_label(name: str, stage: str, size: str = "full", seed: int = 0) -> str:
    """The cache and shipped-models label of a zoo model's stage: ``mnist_cnn-full-s0-dc_pruned``."""
    return f"{name}-{size}-s{seed}-dc_{check_stage(stage)}"


def load_stage(name: str, stage: str, size: str = "full", seed: int = 0, verbose: int | str = 0) -> Any:
    """Zoo model ``name``'s ``stage``, from the cache or the shipped models, else made and cached.

    Its base stages are loaded (or made) the same way first. Taught in ``09_deep_compression``.
    """
    from qlab.zoo.cache import load_or_build
    from qlab.zoo.models import copy_model, load_or_train, mnist_for

    config = stage_config(name, stage, size, seed)
    base_stage = STAGES[stage]
    bases: list[Any] = []

    def base() -> Any:
        if not bases:
            bases.append(load_or_train(name, size, seed, verbose) if base_stage is None
                         else load_stage(name, base_stage, size, seed, verbose))
        return bases[0]

    def build() -> Any:
        return qat_model(stage, base()) if stage in QAT_STAGES else copy_model(base())

    def train(model: Any) -> dict[str, Any]:
        (x, y), _ = mnist_for(name, size)
        made, info = run_stage(stage, base(), x, y, RECIPES[name], BUDGETS[size], seed, verbose,
                               model=model if stage in QAT_STAGES else None,
                               description=f"{stage} fine-tune {name} ({size})")
        if made is not model:
            model.set_weights(made.get_weights())
        return info

    model, _ = load_or_build(stage_label(name, stage, size, seed), config, build, train)
    return model


def stage_file(stage: str, model: Any, x_calib: np.ndarray, calibration_samples: int) -> bytes:
    """The int8 ``.tflite`` of a stage's ``model``: the QAT stages from their fake-quant ranges, the
    others converted after training (``int8_per_channel``, calibrated on ``x_calib``). Both take and
    give int8, like the zoo's other integer variants.
    """
    from qlab.conversion.converter import convert, convert_qat

    if check_stage(stage) in QAT_STAGES:
        return convert_qat(model, int8_io=True)
    return convert(model, "int8_per_channel", x_calib, calibration_samples)


def variant_file(variant: str, model: Any, x_calib: np.ndarray, calibration_samples: int) -> bytes:
    """The int8 ``.tflite`` of a Deep Compression ``variant`` from its stage's ``model`` (:func:`stage_file`)."""
    if variant not in VARIANT_STAGES:
        raise ValueError(f"unknown Deep Compression variant {variant!r}; valid: {', '.join(DC_VARIANTS)}")
    return stage_file(VARIANT_STAGES[variant], model, x_calib, calibration_samples)


def stage_runner(float_model: Any, x: np.ndarray, y: np.ndarray, recipe: Recipe = DEFAULT_RECIPE,
                 budget: Budget | Callable[[], Budget] = BUDGETS["full"], seed: int = 0,
                 verbose: int | str = 0) -> Callable[[str], Any]:
    """``stage -> model`` for a model you bring: each stage made once, from its base, not cached.

    ``budget`` may be a function that returns the :class:`Budget` (``lambda: user_budget(n)``): it is
    called only when a stage runs, so a caller whose variants fine-tune nothing needs no sample
    count, and a bad one fails at the first fine-tune that would use it.
    Used by :func:`qlab.workbook.pipeline.compare_keras_model` for the Deep Compression variants.
    """
    made: dict[str, Any] = {}

    def get(stage: str) -> Any:
        for step in chain(stage):
            if step not in made:
                base = float_model if STAGES[step] is None else made[STAGES[step]]
                made[step], _ = run_stage(step, base, x, y, recipe, budget() if callable(budget) else budget,
                                          seed, verbose, description=f"{step} fine-tune")
        return made[stage]

    return get


#: :func:`byte_shares`' row names, in order; the last is everything but the first.
BYTE_PARTS = ("conv and dense weights", "depthwise weights", "biases and other constants",
              "scales and zero points", "graph, names and shapes", "all but the conv and dense weights")


def _without(model_bytes: bytes, buffers: list[bytes]) -> bytes:
    """``model_bytes`` with each of ``buffers`` cut out once (the file TFMOT's recipes cannot shrink)."""
    rest = model_bytes
    for buffer in sorted(buffers, key=len, reverse=True):
        at = rest.find(buffer) if buffer else -1
        if at >= 0:
            rest = rest[:at] + rest[at + len(buffer):]
    return rest


def byte_shares(model_bytes: bytes) -> "pd.DataFrame":
    """Where a ``.tflite`` file's bytes are, and which of them pruning and clustering can touch.

    One row per :data:`BYTE_PARTS`: ``bytes``, ``share`` of the file and ``gzip bytes`` (that
    part alone through ``gzip -9``, for the weights and for the last row: the file with its conv
    and dense weights cut out, which no TFMOT recipe shrinks). ``touched`` is True only for the
    conv and dense weights: TFMOT prunes and clusters nothing else, so the MobileNets'
    depthwise kernels and per-channel scales stay as they are. ``float32 gzip / last row's gzip``
    is the most any pruning or clustering recipe could give. Taught in ``09_deep_compression``.
    """
    import pandas as pd

    from qlab.conversion.tflite_file import file_weights, size_breakdown
    from qlab.numerics.compression import gzip_size

    weights = file_weights(model_bytes)
    touched = [values.tobytes() for _, op, values in weights if op != "DEPTHWISE_CONV_2D"]
    depthwise = b"".join(values.tobytes() for _, op, values in weights if op == "DEPTHWISE_CONV_2D")
    breakdown = size_breakdown(model_bytes)
    constants = sum(v for k, v in breakdown.items() if k not in ("scales_zero_points", "other"))
    conv = sum(map(len, touched))
    rest = _without(model_bytes, touched)
    sizes = [conv, len(depthwise), constants - conv - len(depthwise), breakdown["scales_zero_points"],
             breakdown["other"], len(rest)]
    table = pd.DataFrame({"part": BYTE_PARTS, "bytes": sizes})
    table["share"] = table["bytes"] / len(model_bytes)
    table["gzip bytes"] = [gzip_size(b"".join(touched)), gzip_size(depthwise), None, None, None, gzip_size(rest)]
    table["touched"] = [True, False, False, False, False, False]
    return table
