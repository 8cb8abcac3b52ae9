"""Judge a results file against a baseline again, without running anything.

    whisper-perf judge results/runs/<key>/<run>.json [--baselines DIR] [--strict-gate]

For a run whose verdicts are missing or out of date: a run stopped by a time limit before it
judged, a run made where the baseline was not at hand (a GPU node without this repository's
``baselines/``), or last night's run judged again after the baseline or its tolerances were
reviewed.  Each measurement in the file gets the speed, WER and device-time verdicts the suite's
own tests give (verdicts.speedup_verdicts, time_verdicts, wer_verdict; device_verdicts), from its
raw samples' summary, its profiled calls and the entry of its model x variant x protocol in the
baseline file of the run's hardware key; a known anomaly applies by the run's own torch and
transformers versions.  The run's other
verdicts (compile health, memory, compile latency) are carried over as they were, and a variant
that failed in the run (no measurement) still fails: the exit status is the run's, re-judged.

Exit status: the run's own where re-judging cannot change it: 2 it was interrupted (the variants
it never reached are listed), 4 or 6 it stopped on bad input or a missing model or GPU.
Otherwise 0 every judged check passed; 1 a regression or a failed variant; 7 with
``--strict-gate``, a speed check could not be judged (no baseline entry, busy machine, machine
speed changed) or none was (nothing measured); 4 usage error (no such file or baselines folder, not a results file, a
malformed baseline file, a variant this suite does not know, a bad option), with the reason on
stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..build.variant_specs import VariantSpec, spec_for
from ..errors import (EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_NOT_JUDGED, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE,
                      UsageError)
from ..judge import baselines
from ..judge.device_verdicts import device_verdicts
from ..judge.verdicts import Verdict, speedup_verdicts, strict_gate_refuses, time_verdicts, wer_verdict
from ..record.report import verdict_table
from ..record.results import RunResult, VerdictRecord, load_run
from . import Parser, run_command

RECORD_HINT = "nox -s record, with the options of the run judged"

Verdicts = list[tuple[str, str, Verdict]]


def _spec(run: RunResult, variant: str) -> VariantSpec:
    try:
        return spec_for(variant)
    except KeyError:
        raise UsageError(f"{run.path}: variant {variant!r} is not one this suite knows (a results file of "
                         "another version of it?)") from None


def rejudge(run: RunResult, folder: Path) -> Verdicts:
    """(model, variant, verdict) of every measurement's speed and WER checks, against ``folder``'s
    baseline file of the run's hardware key (none there: every speed check not judged, saying so)."""
    key = run.hardware_key
    baseline = baselines.load_for(folder, key)
    found = []
    for m in run.measurements:
        spec = _spec(run, m.variant)
        entry, tolerances = baselines.lookup(baseline, m.model, spec.baseline_name, m.protocol)
        missing = baselines.missing_text(m.model, spec.baseline_name, key, m.protocol, folder, RECORD_HINT)
        verdicts = []
        if spec.compiled:
            anomaly = baselines.anomaly_applying(entry, run.software.get("torch", ""),
                                                 run.software.get("transformers", ""))
            verdicts += speedup_verdicts(m.summary, entry, tolerances, anomaly is not None, RECORD_HINT, missing)
        verdicts += time_verdicts(m.summary, entry, tolerances, RECORD_HINT, missing, compiled=spec.compiled,
                                  reference=spec.reference, on_cuda=run.on_cuda,
                                  device_name=run.hardware.get("device_name"))
        verdicts.append(wer_verdict(m.summary, entry, tolerances, m.model))
        if "profile" in (m.diagnostics.variant or {}):  # its diagnostic calls ran (and the file is new enough)
            verdicts += device_verdicts(m.diagnostics.variant, m.diagnostics.reference, entry, tolerances,
                                        on_cuda=run.on_cuda, compiled=spec.compiled, record_hint=RECORD_HINT,
                                        confidence=run.options.get("confidence", 0.95))
        found += [(m.model, m.variant, v) for v in verdicts]
    return found


def judge_run(run: RunResult, folder: Path) -> Verdicts:
    """The run's verdicts as they stand now: its speed and WER checks judged again (``rejudge``),
    its other checks as the run judged them."""
    again = rejudge(run, folder)
    redone = {(model, variant, v.check) for model, variant, v in again}
    kept = [(r.model, r.variant, r.verdict) for r in run.verdicts
            if (r.model, r.variant, r.verdict.check) not in redone]
    return again + kept


CARRIED_STATUSES = (EXIT_INTERRUPTED, EXIT_USAGE, EXIT_ENVIRONMENT)  # what judging again cannot undo


def exit_status(run_status: int, verdicts: Verdicts, failed_variants: int, strict: bool) -> int:
    if run_status in CARRIED_STATUSES:
        return run_status
    if failed_variants or any(v.outcome.fails for _, _, v in verdicts):
        return EXIT_REGRESSION
    if strict and strict_gate_refuses(verdicts):
        return EXIT_NOT_JUDGED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="whisper-perf judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results file (results/runs/<hardware key>/<run>.json)")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"), metavar="DIR",
                        help="folder of baseline files (default: baselines/ here, the project folder)")
    parser.add_argument("--strict-gate", action="store_true",
                        help="a speed check that could not be judged fails with exit status 7, as in the suite")
    args = parser.parse_args(argv)
    if not args.baselines.is_dir():
        raise UsageError(f"--baselines {args.baselines}: no such folder (give the folder of baseline files)")
    run = load_run(args.results)
    verdicts = judge_run(run, args.baselines)
    print(f"{args.results} ({run.hardware_key}, torch {run.software.get('torch')}, transformers "
          f"{run.software.get('transformers')}; the run exited {run.exit_status}) judged against "
          f"{baselines.path_for(args.baselines, run.hardware_key)}:")
    if run.options.get("record"):
        print("note: this run recorded a baseline; judged against that baseline it is compared with itself")
    for failure in run.failures:
        print(f"failed in the run: {failure.stage}: {failure.error}")
    for skip in run.skipped:
        print(f"skipped in the run: {skip.model}/{skip.variant}: {skip.reason}")
    for model, variant in run.unreached():
        print(f"never reached in the run: {model}/{variant}")
    if run.exit_status in CARRIED_STATUSES:
        print(f"note: the run itself ended with exit {run.exit_status}"
              + (" (interrupted): its verdicts cover only what it reached" if run.exit_status == EXIT_INTERRUPTED
                 else "; judging again keeps it"))
    print(verdict_table(verdicts))
    status = exit_status(run.exit_status, verdicts, len(run.failures), args.strict_gate)
    judged = dataclasses.replace(run, verdicts=[VerdictRecord(m, v, verdict) for m, v, verdict in verdicts])
    print(judged.headline())
    return status


if __name__ == "__main__":
    sys.exit(run_command(main))
