"""The options of ``whisper-perf calibrate`` (commands/calibrate.py): the parser, their defaults by
device (a CPU's hour against a GPU's short lease) and their checks, and the batch size the
calibration measures."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import adaptive_options
from ..files import require_new_folder
from . import Parser


def calibrated_batch(args: argparse.Namespace) -> int:
    """The batch size the calibration's runs measure (``--batch`` among its pytest arguments)."""
    from .record import _option

    value, _ = _option(args.pytest_args, "--batch")
    return int(value) if value and value.isdigit() else 1


def options_parser(description: str) -> Parser:
    parser = Parser(prog="whisper-perf calibrate", description=description)
    parser.add_argument("--runs", type=int, default=None,
                        help="check runs, each one A/A and one slowed measurement (default 20 on a CPU, 3 on a GPU)")
    parser.add_argument("--slowdown", type=float, default=None,
                        help="injected slowdown (default 0.15 on a CPU, 0.05 on a GPU)")
    parser.add_argument("--inject-on", default=None, choices=["host", "device"],
                        help="where the slowdown is injected (the suite's --inject-on): host = a busy-wait per decode "
                             "step (default on a CPU), device = an extra GPU kernel per step, which the device-time "
                             "checks see (default on a GPU)")
    parser.add_argument("--variant", default="compiled", help="the compiled variant to calibrate (default: compiled)")
    parser.add_argument("--limit", type=int, default=None,
                        help="utterances per run (default 6 on a CPU, as nox -s perf there; 16 on a GPU)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3, as nox -s perf)")
    parser.add_argument("--record-runs", type=int, default=None,
                        help="processes that record a baseline; the median one is kept (default 3 on a CPU, 1 on a GPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--detect", type=float, default=None,
                        help="check runs take adaptive rounds until each speed check could detect this slowdown "
                             "(as the suite's --detect); the report says where they stopped and what they reached")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="timing budget per measurement of the adaptive rounds (the suite's default without it)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="start no further check run unless, taken to last as long as the longest run so far, it "
                             "ends within this many minutes of the calibration's start (the first always runs); the "
                             "report says how many ran (default: none on a CPU, 8 on a GPU)")
    parser.add_argument("--report", type=Path, default=None, metavar="FOLDER",
                        help="measure nothing: report an earlier calibration's folder again with this version")
    parser.add_argument("--write-tolerances", action="store_true",
                        help="store the suggested tolerances in baselines/<key>.json (review the diff, commit it), "
                             "except a tightened one that would fail a check of an earlier default run here with the "
                             "same torch and transformers (results/runs/<key>): the file keeps its own, and the "
                             "command names the run")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                        help="a new folder for the calibration (default: results/calibration/<key>/<time>)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments for every run (after --)")
    return parser


# A CPU calibration has the hour a 2-core machine gives it; a GPU's must fit a short lease of the
# device: one recording and three check runs (the fewest that suggest tolerances) in 8 minutes.
DEVICE_DEFAULTS = {False: {"runs": 20, "record_runs": 3, "limit": 6, "budget_minutes": None, "slowdown": 0.15,
                          "inject_on": "host"},
                   True: {"runs": 3, "record_runs": 1, "limit": 16, "budget_minutes": 8.0, "slowdown": 0.05,
                          "inject_on": "device"}}


def with_device_defaults(args: argparse.Namespace, on_cuda: bool) -> None:
    """The defaults of the options left unset, by device (DEVICE_DEFAULTS); --limit at least the
    batch size (``-- --batch N``), which the suite needs."""
    for name, value in DEVICE_DEFAULTS[on_cuda].items():
        if getattr(args, name) is None:
            setattr(args, name, max(value, calibrated_batch(args)) if name == "limit" else value)


def check_options(parser: Parser, args: argparse.Namespace) -> None:
    from ..build.variant_specs import COMPILED_VARIANTS

    if args.variant not in COMPILED_VARIANTS:
        parser.error(f"--variant must be one of {COMPILED_VARIANTS}")
    if any(n is not None and n < 1 for n in (args.runs, args.record_runs)):
        parser.error("--runs and --record-runs must be at least 1")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        parser.error("--budget-minutes must be more than 0")
    if args.slowdown is not None and not 0 < args.slowdown <= 5:
        parser.error("--slowdown must be in (0, 5]")
    args.detect, args.max_minutes = adaptive_options(args.detect, args.max_minutes)  # as the suite checks them
    if args.out:
        require_new_folder(args.out)
