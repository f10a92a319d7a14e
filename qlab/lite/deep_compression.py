"""Deep Compression with TFMOT: prune, cluster, keep both through QAT, quantize, compress.

Han et al.'s pipeline (pruning, trained quantization, Huffman coding) in TensorFlow's terms:
magnitude pruning (:mod:`qlab.lite.prune`), weight clustering (:mod:`qlab.lite.cluster`),
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

from qlab.lite.conversion import DC_BARS as BARS, DC_VARIANTS
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
        from qlab.lite.cluster import MAX_CLUSTERS, centroid_initialization
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
    from qlab.lite import cluster

    wrapped = cluster.cluster_model(base, recipe.clusters, recipe.centroid_init, recipe.per_channel,
                                    preserve_sparsity=(stage == "pruned_clustered"))
    return cluster.fine_tune_clustered(wrapped, x, y, budget.cluster_epochs, budget.batch_size, seed=seed,
                                       description=description, verbose=verbose)


def _qat_stage(stage: str, base: Any, x: np.ndarray, y: np.ndarray, budget: Budget, seed: int,
               verbose: int | str, model: Any, description: str) -> tuple[Any, dict[str, Any]]:
    """PQAT, CQAT or PCQAT: one epoch on ``budget.qat_samples`` images from the data's activation ranges."""
    from qlab.lite.qat import fine_tune
    from qlab.lite.qat_ranges import start_from_data

    model = qat_model(stage, base) if model is None else model
    start_from_data(model, base, x[:CALIBRATED_START_IMAGES])
    info = fine_tune(model, x[:budget.qat_samples], y[:budget.qat_samples], 1, seed=seed, verbose=verbose,
                     description=description)
    return model, info


def _pruning_stage(stage: str, base: Any, x: np.ndarray, y: np.ndarray, recipe: Recipe, budget: Budget,
                   seed: int, verbose: int | str, description: str) -> tuple[Any, dict[str, Any]]:
    """``pruned``, or its control ``tuned``: the same optimizer, rate, epochs and batches with nothing pruned."""
    from qlab.lite import prune
    from qlab.lite.models import copy_model
    from qlab.lite.qat import fine_tune

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

    ``pqat``: :func:`qlab.lite.prune.quantize_preserving_sparsity`; ``cqat`` and ``pcqat``:
    :func:`qlab.lite.cluster.quantize_preserving_clusters` (``pcqat`` keeps the zeros too).
    """
    from qlab.lite import cluster, prune

    if stage == "pqat":
        return prune.quantize_preserving_sparsity(base)
    if stage in ("cqat", "pcqat"):
        return cluster.quantize_preserving_clusters(base, preserve_sparsity=(stage == "pcqat"))
    raise ValueError(f"{stage!r} is not a QAT stage; QAT stages: {', '.join(QAT_STAGES)}")


def stage_config(name: str, stage: str, size: str = "full", seed: int = 0) -> dict[str, Any]:
    """Everything that determines a zoo model's stage (its cache key), its base stages included."""
    from qlab.lite.models import check_size, get_spec, training_config
    from qlab.lite.prune import PRUNE_LEARNING_RATE
    from qlab.lite.cluster import CLUSTER_LEARNING_RATE
    from qlab.lite.qat import QAT_LEARNING_RATE

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
    from qlab.lite.cache import load_or_build
    from qlab.lite.models import copy_model, load_or_train, mnist_for

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
    from qlab.lite.conversion import convert, convert_qat

    if check_stage(stage) in QAT_STAGES:
        return convert_qat(model, int8_io=True)
    return convert(model, "int8_per_channel", x_calib, calibration_samples)


def variant_file(variant: str, model: Any, x_calib: np.ndarray, calibration_samples: int) -> bytes:
    """The int8 ``.tflite`` of a Deep Compression ``variant`` from its stage's ``model`` (:func:`stage_file`)."""
    if variant not in VARIANT_STAGES:
        raise ValueError(f"unknown Deep Compression variant {variant!r}; valid: {', '.join(DC_VARIANTS)}")
    return stage_file(VARIANT_STAGES[variant], model, x_calib, calibration_samples)


def stage_runner(float_model: Any, x: np.ndarray, y: np.ndarray, recipe: Recipe = DEFAULT_RECIPE,
                 budget: Budget = BUDGETS["full"], seed: int = 0,
                 verbose: int | str = 0) -> Callable[[str], Any]:
    """``stage -> model`` for a model you bring: each stage made once, from its base, not cached.

    Used by :func:`qlab.workbook.pipeline.compare_keras_model` for the Deep Compression variants.
    """
    made: dict[str, Any] = {}

    def get(stage: str) -> Any:
        for step in chain(stage):
            if step not in made:
                base = float_model if STAGES[step] is None else made[STAGES[step]]
                made[step], _ = run_stage(step, base, x, y, recipe, budget, seed, verbose,
                                          description=f"{step} fine-tune")
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

    from qlab.lite.tflite import file_weights, size_breakdown
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


#: The rows of :func:`deep_compression_study`: (row name, stage or None for the float model, how it is stored).
STUDY_ROWS = (
    ("float32", None, "float32"),
    ("float32 fine-tuned as long (control)", "tuned", "float32"),
    ("pruned", "pruned", "float32"),
    ("pruned, int8 PTQ", "pruned", "int8"),
    ("clustered", "clustered", "float32"),
    ("clustered, int8 PTQ", "clustered", "int8"),
    ("pruned + clustered", "pruned_clustered", "float32"),
    ("pruned + clustered, int8 PTQ", "pruned_clustered", "int8"),
    ("PCQAT int8", "pcqat", "int8"),
)


def deep_compression_study(model_name: str, size: str = "full", seed: int = 0,
                           verbose: bool = False) -> "pd.DataFrame":
    """Deep Compression stage by stage on a zoo model: accuracy, stored and compressed size.

    One row per :data:`STUDY_ROWS` (float32, the fine-tuned control, then pruned, clustered
    and both, each as a float32 and an int8 PTQ file, and PCQAT int8). Columns:
    ``accuracy`` on the test images, its difference from float32 and from the control in
    points with 95% paired bootstrap intervals, ``bytes``, ``gzip bytes`` (``gzip -9``),
    ``zip bytes`` (TFMOT's measure), ``gzip ratio`` and ``zip ratio`` (float32 compressed /
    compressed), ``zeros kept`` (the least share of a pruned kernel's zeros still zero in the
    file), ``values per channel`` (the most distinct values in an output channel of a conv
    or dense weight) and ``values sha256`` of the stage's weights. A recorded study
    (:mod:`qlab.workbook.studies`) for ``09_deep_compression``.
    """
    import pandas as pd

    from qlab.lite.cluster import tflite_unique_values
    from qlab.lite.conversion import DEFAULT_CALIBRATION_SAMPLES, convert
    from qlab.lite.models import load_or_train, mnist_for
    from qlab.lite.prune import zeros_kept_in_file
    from qlab.lite.shipped import values_sha256
    from qlab.lite.tflite import predict_tflite
    from qlab.numerics.compression import compressed_sizes
    from qlab.numerics.metrics import gain_columns

    (x, _), (x_test, y_test) = mnist_for(model_name, size)
    models = {None: load_or_train(model_name, size, seed, verbose=0)}
    rows, scores = [], {}
    for row, stage, stored in STUDY_ROWS:
        if stage not in models:
            models[stage] = load_stage(model_name, stage, size, seed, verbose=0)
        model = models[stage]
        if stored == "float32":
            model_bytes = convert(model, "float32")
        else:
            model_bytes = stage_file(stage, model, x, DEFAULT_CALIBRATION_SAMPLES)
        if verbose:
            print(f"  {model_name}: {row}", flush=True)
        scores[row] = predict_tflite(model_bytes, x_test)
        sizes, shares = compressed_sizes(model_bytes), byte_shares(model_bytes)
        rows.append({"model": model_name, "stage": row, "bytes": sizes["bytes"], "gzip bytes": sizes["gzip9"],
                     "zip bytes": sizes["zip_deflate"],
                     "zeros kept": float(zeros_kept_in_file(models["pruned"], model_bytes)["kept"].min())
                     if stage in ("pruned", "pruned_clustered", "pcqat") else None,
                     "values per channel": int(tflite_unique_values(model_bytes)
                                               .query("op != 'DEPTHWISE_CONV_2D'")["unique_per_channel_max"].max()),
                     "untouched bytes": int(shares["bytes"].iloc[-1]),
                     "untouched gzip bytes": int(shares["gzip bytes"].iloc[-1]),
                     "values sha256": values_sha256(model)})
    for row in rows:
        own = scores[row["stage"]]
        row["accuracy"] = float((own.argmax(1) == y_test).mean())
        row.update(gain_columns(own, scores["float32"], y_test, "vs float32 (points)", "vs float32 low",
                                "vs float32 high"))
        row.update(gain_columns(own, scores[STUDY_ROWS[1][0]], y_test, "vs control (points)", "vs control low",
                                "vs control high"))
        row["gzip ratio"] = rows[0]["gzip bytes"] / row["gzip bytes"]
        row["zip ratio"] = rows[0]["zip bytes"] / row["zip bytes"]
    return pd.DataFrame(rows)


def best_pipeline(stages: "pd.DataFrame") -> "pd.DataFrame":
    """Per model of a :func:`deep_compression_study` table: its smallest compressed file within the accuracy bar.

    The bar is :data:`BARS` (a model you bring: 0.5 points); the row kept is the highest ``gzip ratio``
    among the stages losing at most that many points against float32 (none: the most accurate of
    the int8 rows). Columns: ``model``, ``stage``, ``gzip ratio``, ``zip ratio``, the loss against
    float32 and against the control with their intervals, the bar, and ``meets bar``. Taught in
    ``09_deep_compression``.
    """
    import pandas as pd

    rows = []
    for model, table in stages.groupby("model", sort=False):
        ratio_bar, points_bar = BARS.get(model, (8.0, 0.5))
        within = table[-table["vs float32 (points)"] <= points_bar + 1e-9]
        best = (within if len(within) else table).sort_values("gzip ratio", ascending=False).iloc[0]
        rows.append({"model": model, "stage": best["stage"], "gzip ratio": best["gzip ratio"],
                     "zip ratio": best["zip ratio"], "accuracy": best["accuracy"],
                     "loss vs float32 (points)": -best["vs float32 (points)"],
                     "loss vs float32, 95% CI": (-best["vs float32 high"], -best["vs float32 low"]),
                     "loss vs control (points)": -best["vs control (points)"],
                     "loss vs control, 95% CI": (-best["vs control high"], -best["vs control low"]),
                     "bar: gzip ratio >=": ratio_bar, "bar: points lost <=": points_bar,
                     "meets bar": bool(best["gzip ratio"] >= ratio_bar and len(within))})
    return pd.DataFrame(rows)


#: Published ratios and the study row measured the same way: (who, what they compressed, x smaller, row).
CLAIMS = (
    ("TFMOT pruning guide", "pruned float", 3.0, "pruned"),
    ("TFMOT pruning guide", "pruned + int8 PTQ", 10.0, "pruned, int8 PTQ"),
    ("TFMOT clustering guide", "clustered float", 6.0, "clustered"),
    ("TFMOT clustering guide", "clustered + int8 PTQ", 8.0, "clustered, int8 PTQ"),
    ("Han et al. 2016, AlexNet", "pruned, clustered, Huffman-coded", 35.0, "PCQAT int8"),
    ("Han et al. 2016, VGG-16", "pruned, clustered, Huffman-coded", 49.0, "PCQAT int8"),
)


def claims_table(stages: "pd.DataFrame") -> "pd.DataFrame":
    """:data:`CLAIMS` beside the ``zip ratio`` (TFMOT's measure) of the same stage in each model's study.

    Columns: ``claim``, ``claimed`` ("3x"), ``stage``, ``model``, ``measured here (zip)`` and
    ``measured here (gzip -9)``. Taught in ``09_deep_compression``.
    """
    import pandas as pd

    by_stage = stages.set_index(["model", "stage"])
    rows = [{"claim": f"{who}: {what}", "claimed": f"{ratio:g}x", "stage": stage, "model": model,
             "measured here (zip)": by_stage.loc[(model, stage), "zip ratio"],
             "measured here (gzip -9)": by_stage.loc[(model, stage), "gzip ratio"]}
            for who, what, ratio, stage in CLAIMS for model in dict.fromkeys(stages["model"])]
    return pd.DataFrame(rows)
