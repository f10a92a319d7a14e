"""The ``qlab`` command line (also ``python -m qlab``)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import ContextManager, Sequence


def _cmd_env(args: argparse.Namespace) -> int:
    from qlab.zoo.environment import check_environment, environment_report

    for key, value in environment_report().items():
        print(f"{key:>29}: {value}")
    if not args.check:
        return 0
    checks = check_environment()
    print(f"\n{checks!r}")
    return 0 if checks.ok else 1


def _cmd_html(args: argparse.Namespace) -> int:
    from qlab.workbook.html import render_html

    pages = render_html("smoke" if args.smoke else "full", output_dir=args.output)
    print(f"{len(pages) - 1} notebooks rendered; open {pages[-1]}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from qlab.workbook.notebook import notebook_paths, run_notebook

    paths = notebook_paths(args.notebooks)
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    mode = "smoke" if args.smoke else "full"
    started = time.time()
    runs = []
    for path in paths:
        print(f"running {path.name} ({mode} mode) ...", flush=True)
        run = run_notebook(path, smoke=args.smoke, progress=not args.quiet)
        runs.append(run)
        print(f"  done in {run.seconds:.1f} s -> {run.output}", flush=True)
    print(f"\n{'notebook':<40} {'seconds':>8}")
    for run in runs:
        print(f"{run.source.name:<40} {run.seconds:>8.1f}")
    print(f"\nexecuted notebooks are in {runs[0].output.parent}")
    from qlab.workbook.pipeline import latest_result

    result = latest_result(mode, since=started)
    if result is not None:
        print(f"\nThe comparison table these notebooks measured ({result.path}):\n{result!r}")
    return 0


def _cmd_lessons(args: argparse.Namespace) -> int:
    from qlab.workbook.lessons import (CODE_LINES_PER_MINUTE, MINUTES_PER_EXERCISE, MINUTES_PER_FIGURE,
                                       MINUTES_PER_WIDGET, SECONDS_PER_OUTPUT, WORDS_PER_MINUTE,
                                       executed_lessons, lesson_times)

    table = lesson_times(executed_lessons("smoke" if args.smoke else "full"))
    columns = ["lesson", "core min", "whole min", "core words", "core code_lines", "core outputs", "core figures",
               "core widgets", "core exercises", "core run_seconds"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"\ntotal: core {table['core min'].sum():.0f} min, whole {table['whole min'].sum():.0f} min")
    print(f"rule: {WORDS_PER_MINUTE} words/min, {CODE_LINES_PER_MINUTE} code lines/min, {SECONDS_PER_OUTPUT} s per "
          f"output, {MINUTES_PER_FIGURE} min per figure, {MINUTES_PER_WIDGET} per widget, {MINUTES_PER_EXERCISE} per "
          "exercise, plus the measured run time; the core ends at '## Going further'")
    return 0


def _cmd_solutions(args: argparse.Namespace) -> int:
    from qlab.files.paths import artifacts_dir
    from qlab.workbook.exercise_cells import write_solved_notebooks
    from qlab.workbook.notebook import notebook_paths

    written = write_solved_notebooks(notebook_paths(), args.output or artifacts_dir() / "solutions")
    for path in written:
        print(path)
    print(f"{len(written)} lessons with their exercises solved, for instructors (not for the learners' folder)")
    return 0


def _bars_off(quiet: bool) -> ContextManager[None]:
    """With ``--quiet``, qlab's progress bars are off too (``QLAB_PROGRESS=0``) until the command ends."""
    from qlab.files.paths import environment_variable
    from qlab.zoo.progress import PROGRESS_ENV

    return environment_variable(PROGRESS_ENV, "0") if quiet else contextlib.nullcontext()


def _model_file(values: Sequence[str] | None) -> Path | None:
    """The model file ``--model`` names (an existing path, or a name ending in .keras/.h5), else None."""
    files = [v for v in values or () if Path(v).exists() or v.endswith((".keras", ".h5"))]
    if not files:
        return None
    if len(values) > 1:
        raise ValueError(f"--model takes either zoo names or one model file, got {', '.join(values)}")
    return Path(files[0])


def _cmd_compare(args: argparse.Namespace) -> int:
    from qlab.workbook.pipeline import check_models, compare
    from qlab.conversion.converter import check_variants

    model_file = _model_file(args.model)
    if model_file is None and args.data:
        raise ValueError("--data goes with a model file: --model my_model.keras --data my_data.npz "
                         "(the zoo models bring their own MNIST)")
    check_variants(args.variants, keras3=True)  # fail on a bad name before any training
    if model_file is not None:
        result = _compare_file(args, model_file)
    else:
        models = check_models(",".join(args.model) if args.model else "all")
        with _bars_off(args.quiet):  # "all" as given: the Keras 3 transformer's includes keras_*
            result = compare(models, args.variants, size="smoke" if args.smoke else "full",
                             seed=args.seed, latency=not args.no_latency,
                             calibration_samples=args.calibration_samples,
                             verbose=0 if args.quiet else 2)
    print(result)
    if args.json:
        from qlab.files.io import write_json_atomic

        write_json_atomic(args.json, result.rows())
        print(f"JSON written to {args.json}")
    if args.csv:
        from qlab.files.io import write_bytes_atomic

        write_bytes_atomic(args.csv, result.table.to_csv(index=False).encode())
        print(f"CSV written to {args.csv}")
    return 0


def _compare_file(args: argparse.Namespace, model_file: Path) -> object:
    """``qlab compare --model FILE --data FILE``: :func:`qlab.compare_keras_model` on a user's model
    (``--variants all`` includes Keras 3's own keras_* modes for a Keras 3 model)."""
    from qlab.conversion.converter import DEFAULT_CALIBRATION_SAMPLES
    from qlab.workbook.pipeline import compare_keras_model
    from qlab.workbook.user_data import load_dataset_file

    if not args.data:
        raise ValueError(f"--model {model_file} is a model file; give its data too: --data FILE.npz "
                         "holding x_train, y_train, x_test, y_test")
    data = load_dataset_file(args.data)  # before the model: a bad data file fails in a moment
    with _bars_off(args.quiet):  # the model is loaded there, the zoo transformer's own layers known
        return compare_keras_model(
            model_file, data, args.variants, latency=not args.no_latency,
            calibration_samples=args.calibration_samples or DEFAULT_CALIBRATION_SAMPLES,
            fine_tune_samples=args.fine_tune_samples, seed=args.seed, verbose=0)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from qlab.workbook.pipeline import COLUMNS
    from qlab.conversion.converter import KERAS3_VARIANTS, VARIANTS
    from qlab.zoo.models import MODELS, NARROW_MODELS
    from qlab.zoo.transformer import NAME as ENCODER

    compare = sub.add_parser(
        "compare", help="measure zoo models x quantization variants (accuracy, size, latency)",
        description="Train (or load from artifacts/models/) each zoo model - or take your own "
                    "model file and .npz data (--model FILE --data FILE) - convert it to every "
                    "requested variant, and measure top-1 accuracy on the MNIST test set through "
                    "the LiteRT interpreter, the .tflite size and batch-1 single-thread latency "
                    "(interleaved with the float32 baseline in this process). The table is "
                    "printed and saved with the environment under artifacts/results/.",
        epilog=f"models: {', '.join(MODELS)} ('all'); compared when named: {', '.join(NARROW_MODELS)}, "
               f"{ENCODER}. variants: {', '.join(VARIANTS)} (described in "
               f"qlab.conversion.converter.VARIANTS); a Keras 3 model (the {ENCODER} transformer, or a .keras "
               f"file from Keras 3) also has Keras 3's own model.quantize modes {', '.join(KERAS3_VARIANTS)}, "
               f"in its 'all' too (qlab.conversion.converter.KERAS3_VARIANTS). JSON rows have the keys "
               f"{', '.join(COLUMNS)}; accuracy is a fraction, sizes in bytes, latency in ms. Every row is "
               f"also compared with the float32 model on the same test images: top1_agreement (share of images with the same "
               f"top class), output_sqnr_db (null for float32 itself: identical), kl_divergence (nats), "
               f"accuracy_delta with delta_low/delta_high (95% paired bootstrap interval, fractions) "
               f"and mcnemar_p (exact McNemar test of the images only one of the two gets right).")
    compare.add_argument("--model", action="append", metavar="NAME|FILE",
                         help="zoo model(s): repeat the option or give a comma list; 'all' "
                              "(the default) for the three CNNs. Or your own model file (.keras from "
                              "Keras 3 or 2, .h5, SavedModel folder) with --data")
    compare.add_argument("--data", metavar="FILE.npz",
                         help="with --model FILE: a .npz holding x_train, y_train, x_test, y_test "
                              "(float32 images shaped like the model input, integer labels)")
    compare.add_argument("--fine-tune-samples", type=int, default=10_000, metavar="N",
                         help="with --model FILE: training examples the QAT variants fine-tune on "
                              "for one epoch (default 10000)")
    compare.add_argument("--variants", default="all", metavar="LIST",
                         help="comma list of variants, or 'all' (default; a Keras 3 model's 'all' adds "
                              "the keras_* modes)")
    compare.add_argument("--smoke", action="store_true",
                         help="smoke size: a few hundred images and one short epoch (for tests; "
                              "accuracies are not meaningful)")
    compare.add_argument("--seed", type=int, default=0,
                         help="training seed (default 0); same seed and config give identical "
                              "accuracies")
    compare.add_argument("--json", metavar="PATH",
                         help="also write the rows to PATH as a JSON list (the copy under "
                              "artifacts/results/ adds the environment and config)")
    compare.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    compare.add_argument("--no-latency", action="store_true",
                         help="skip the latency measurement (faster)")
    compare.add_argument("--calibration-samples", type=int, default=None, metavar="N",
                         help="representative images for the full-integer variants "
                              "(default 500, 100 with --smoke)")
    compare.add_argument("--quiet", action="store_true", help="no progress lines")
    compare.set_defaults(func=_cmd_compare)


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from qlab.workbook import bench

    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        command = "qlab bench" + (" " + " ".join(args.argv) if args.argv else "")
        results = bench.collect(models=",".join(args.model) if args.model else "all",
                                variants=args.variants, seed=args.seed,
                                latency_repeats=args.latency_repeats,
                                latency_runs=args.latency_runs, notebooks=args.notebooks,
                                skip_notebooks=args.skip_notebooks, skip_widgets=args.skip_widgets,
                                widget_repeats=args.widget_repeats, verbose=not args.quiet,
                                command=command, checkpoint=lambda partial: bench.write_report(
                                    partial, args.json, args.report, args.plot))
    paths = bench.write_report(results, args.json, args.report, args.plot)
    for kind, path in paths.items():
        print(f"{kind:>6}: {path}")
    missed = bench.check_goals(results)
    print("all goals met" if not missed else f"{len(missed)} goal(s) missed:\n  "
          + "\n  ".join(missed))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="full-size benchmark: accuracy, size, latency, notebook and widget times "
                      "-> BENCHMARKS.md",
        description="Run the full-size comparison of every model and variant (trained models "
                    "come from artifacts/models/), repeat the latency measurement to show its "
                    "noise, time the widgets' updates and every notebook in full and smoke mode "
                    "(fresh kernel each, one after another), then write the JSON, a plot and "
                    "the markdown report. Takes tens of minutes; progress goes to stdout.",
        epilog="Check the goals afterwards with: python benchmarks/check.py [results.json]")
    parser.add_argument("--model", action="append", metavar="NAME",
                        help="zoo model(s) (repeat or comma list); default all: the three CNNs and "
                             "the transformer patch_encoder")
    parser.add_argument("--variants", default="all", metavar="LIST",
                        help="comma list of variants, or 'all' (default; the transformer's 'all' adds "
                             "Keras 3's keras_* modes)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--latency-repeats", type=int, default=7, metavar="N",
                        help="interleaved latency measurements per model; the report shows "
                             "their median and min-max (default 7)")
    parser.add_argument("--latency-runs", type=int, default=400, metavar="N",
                        help="timed invokes per file in each repeat (default 400)")
    parser.add_argument("--notebooks", nargs="+", metavar="NN",
                        help="only time the notebooks whose names start with these (default all)")
    parser.add_argument("--skip-notebooks", action="store_true",
                        help="do not time the notebooks (for development; the checker then "
                             "fails the workbook-time goal)")
    parser.add_argument("--skip-widgets", action="store_true",
                        help="do not time the widget updates")
    parser.add_argument("--widget-repeats", type=int, default=40, metavar="N",
                        help="updates per widget control (default 40: enough for a p95)")
    parser.add_argument("--from-json", metavar="PATH",
                        help="measure nothing: re-render the report and plot from a results "
                             "JSON written by an earlier run")
    parser.add_argument("--json", metavar="PATH",
                        help="where to write the results JSON (default benchmarks/results.json)")
    parser.add_argument("--report", metavar="PATH",
                        help="where to write the markdown report (default BENCHMARKS.md)")
    parser.add_argument("--plot", metavar="PATH",
                        help="where to save the accuracy/size/latency plot "
                             "(default benchmarks/accuracy_size_latency.png)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_cmd_bench)


def _cmd_train(args: argparse.Namespace) -> int:
    from qlab.numerics.validate import check_names
    from qlab.qat.low_bit import SHIPPED_LOW_BIT
    from qlab.workbook.pipeline import check_models
    from qlab.workbook.train import train_zoo
    from qlab.zoo.models import MODELS, known_models
    from qlab.zoo.transformer import NAME as ENCODER

    named = ",".join(args.model) if args.model else "all"
    models = [*MODELS, ENCODER] if named == "all" else check_names(named, [*known_models(), ENCODER], "models")
    variants, stages, low_bit = ([name for name in (text or "").split(",") if name]
                                 for text in (args.qat, args.dc, args.low_bit))
    with _bars_off(args.quiet):
        table = train_zoo(models, variants, "smoke" if args.smoke else "full", args.seed,
                          args.output, stages=stages,
                          low_bit={m: SHIPPED_LOW_BIT.get(m, (3,)) for m in check_models(",".join(low_bit))}
                          if low_bit else {})
    print(table.to_string())
    differ = table["same as shipped"].eq(False)
    if differ.any():
        print(f"{int(differ.sum())} entr(y/ies) differ from the shipped weights: "
              + ", ".join(table.index[differ]), file=sys.stderr)
        return 1
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from qlab.qat.low_bit import SHIPPED_LOW_BIT
    from qlab.workbook.train import SHIPPED_DC_STAGES, SHIPPED_QAT_VARIANTS

    parser = sub.add_parser(
        "train", help="train the zoo models and their QAT and Deep Compression fine-tunes from scratch, "
                      "as shipped",
        description="Train zoo models and their QAT and Deep Compression fine-tunes from scratch (no "
                    "cache, no shipped model is reused) and write them in the shipped format (gzip-compressed "
                    "weights and a manifest with sha256). Each row says whether the weights are "
                    "bit for bit the ones shipped in data/models/; exit code 1 if any differ. "
                    "To ship new models: --output data/models.")
    parser.add_argument("--model", action="append", metavar="NAME",
                        help="zoo model(s) (repeat or comma list); default all: the three CNNs and the "
                             "Keras 3 transformer patch_encoder (a narrow model such as mobilenet_v2_035 "
                             "when named)")
    parser.add_argument("--qat", default=",".join(SHIPPED_QAT_VARIANTS), metavar="LIST",
                        help="comma list of QAT fine-tunes to make for each model; '' for none "
                             f"(default {','.join(SHIPPED_QAT_VARIANTS)})")
    parser.add_argument("--dc", default=",".join(SHIPPED_DC_STAGES), metavar="LIST",
                        help="comma list of Deep Compression stages to make for each model; '' for "
                             f"none (default {','.join(SHIPPED_DC_STAGES)})")
    parser.add_argument("--low-bit", default=",".join(SHIPPED_LOW_BIT), metavar="LIST",
                        help="comma list of models whose 3-bit-weight QAT fine-tune (lesson 06's "
                             "recovery) to make too; '' for none "
                             f"(default {','.join(SHIPPED_LOW_BIT)})")
    parser.add_argument("--smoke", action="store_true",
                        help="the smoke budget (seconds) instead of the full one (tens of minutes)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the files and manifest (default artifacts/trained/<size>/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cmd_train)


def _cmd_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from qlab.conversion.micro_boards import BOARDS, fit_table

    files = {}
    for path in args.files:
        if not path.is_file():
            raise FileNotFoundError(f"no such .tflite file: {path}")
        files[str(path)] = path.read_bytes()
    x_test, y_test = _fit_data(args)  # before TFLM: a bad data file fails in a moment
    table = fit_table(files, BOARDS)
    with pd.option_context("display.width", 200, "display.max_colwidth", 90, "display.max_columns", 10):
        print(table.to_string(index=False))
    for board in BOARDS:
        print(f"{board!r}\n  source: {board.source}")
    if x_test is not None:
        _print_agreement(files, table, x_test, y_test)
    return 0 if table["fits"].any() else 1


def _fit_data(args: argparse.Namespace) -> tuple[object, object]:
    """``--data``'s first ``--images`` test images and labels, or ``(None, None)`` without ``--data``."""
    from qlab.workbook.user_data import load_dataset_file

    if args.data is None:
        return None, None
    if args.images < 1:
        raise ValueError(f"--images must be 1 or more, got {args.images}")
    (_, _), (x_test, y_test) = load_dataset_file(args.data)
    return x_test[:args.images], y_test[:args.images]


def _print_agreement(files: dict, table: object, x_test: object, y_test: object) -> None:
    """TFLM against LiteRT on the test images, for every file TFLM runs (one line each)."""
    from qlab.conversion.micro import micro_agreement

    runs = table.drop_duplicates("file").set_index("file")["arena bytes"].notna()
    for name in [name for name, runs_on_tflm in runs.items() if runs_on_tflm]:
        print(f"{name}: {micro_agreement(files[name], x_test, y=y_test)!r}")


def _add_fit(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fit", help="will a .tflite run on a microcontroller, and fit two published boards? (TFLM, measured)",
        description="For each file: whether TensorFlow Lite for Microcontrollers runs it (or why not: float ops, "
                    "weights after the FlatBuffer, an op or kernel it lacks), its flash bytes, the smallest tensor "
                    "arena TFLM allocates it in, and whether it fits the nRF52840 and the STM32H743ZI (their "
                    "figures from the makers' documents; the RAM and flash kept for the program are assumptions). "
                    "With --data, every file TFLM runs is also run on the test images, by TFLM and by LiteRT "
                    "(default and reference kernels): TFLM's accuracy and how many int8 outputs agree. "
                    "Exit code 1 when no file fits any board.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.tflite")
    parser.add_argument("--data", type=Path, metavar="FILE.npz",
                        help="a .npz holding x_train, y_train, x_test, y_test (as for qlab compare --data): the "
                             "float test images in the model's input range, and their integer labels")
    parser.add_argument("--images", type=int, default=1_000,
                        help="how many of the test images to run (default 1,000; TFLM's reference kernels take "
                             "milliseconds per image)")
    parser.set_defaults(func=_cmd_fit)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="qlab", description="qlab: a workbook for neural-network quantization in TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = sub.add_parser("env", help="print the versions and machine facts qlab runs on")
    env.add_argument("--check", action="store_true",
                     help="also check that TensorFlow, TFMOT, LiteRT and MNIST work (about 10 s)")
    env.set_defaults(func=_cmd_env)

    run = sub.add_parser(
        "run", help="execute the notebook sequence headless (copies go to artifacts/notebooks/)",
        description="Execute the workbook's notebooks in order with papermill, each in a fresh "
                    "kernel. The sources in notebooks/ are never modified.")
    run.add_argument("notebooks", nargs="*", metavar="NN",
                     help="only the notebooks whose file names start with these (e.g. 00 03)")
    run.add_argument("--smoke", action="store_true",
                     help="small data and budgets (seconds per notebook) instead of the full run")
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    run.set_defaults(func=_cmd_run)
    page = sub.add_parser(
        "html", help="render the executed notebooks of the last `qlab run` to static HTML",
        description="Turn the executed copies under artifacts/notebooks/ into HTML pages with their "
                    "tables and figures, for learners who cannot run a kernel. Nothing is executed.")
    page.add_argument("--smoke", action="store_true", help="render the smoke run's copies")
    page.add_argument("--output", type=Path, default=None,
                      help="folder for the pages (default artifacts/html/<full|smoke>/)")
    page.set_defaults(func=_cmd_html)
    lessons = sub.add_parser(
        "lessons", help="estimate each lesson's time in the room, core and whole (from the last `qlab run`)",
        description="Learner time per lesson from its executed copy: words, code lines, outputs, figures, "
                    "widgets and exercises at fixed rates, plus the measured run time. INSTRUCTORS.md "
                    "takes its slots from it.")
    lessons.add_argument("--smoke", action="store_true", help="read the smoke run's copies")
    lessons.set_defaults(func=_cmd_lessons)
    solutions = sub.add_parser(
        "solutions", help="write each lesson with its exercises solved, for instructors",
        description="Fill every exercise of every lesson with its answer from solutions/ and write "
                    "the lessons to artifacts/solutions/ (nothing is executed; notebooks/ is not touched).")
    solutions.add_argument("--output", type=Path, default=None, help="folder (default artifacts/solutions/)")
    solutions.set_defaults(func=_cmd_solutions)
    _add_compare(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_fit(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlab`` command."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"qlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
