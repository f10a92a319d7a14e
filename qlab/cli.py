"""The ``qlab`` command line (also ``python -m qlab``)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _cmd_env(args: argparse.Namespace) -> int:
    from qlab.environment import check_environment, environment_report

    for key, value in environment_report().items():
        print(f"{key:>29}: {value}")
    if not args.check:
        return 0
    checks = check_environment()
    print(f"\n{checks!r}")
    return 0 if checks.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from qlab.notebook import notebook_paths, run_notebook

    paths = notebook_paths(args.notebooks)
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    mode = "smoke" if args.smoke else "full"
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
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlab`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"qlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
