"""Judge a results file against a baseline again, without running anything.

    python -m whisper_perf.commands.judge results/runs/<key>/<run>.json [--baselines DIR] [--strict-gate]

For a run whose verdicts are missing or out of date: a run stopped by a time limit before it
judged, a run made where the baseline was not at hand (a GPU node without this repository's
``baselines/``), or last night's run judged again after the baseline or its tolerances were
reviewed.  Each measurement in the file gets the speed and WER verdicts the suite's own tests
give (verdicts.speedup_verdicts, time_verdicts, wer_verdict), from its raw samples' summary and
the entry of its model x variant x protocol in the baseline file of the run's hardware key; a
known anomaly applies by the run's own torch and transformers versions.  Compile health, memory
and compile latency are not judged again (their verdicts in the file stand).

Exit status: 0 every judged check passed; 1 a regression; 7 with ``--strict-gate``, a speed check
could not be judged (no baseline entry, busy machine, machine speed changed); 4 usage error (no
such file, not a results file, a malformed baseline file), with the reason on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import baselines
from ..errors import EXIT_NOT_JUDGED, EXIT_OK, EXIT_REGRESSION
from ..report import verdict_table
from ..results import RunResult, Tally, load_run
from ..variants import spec_for
from ..verdicts import Verdict, speedup_verdicts, time_verdicts, wer_verdict
from . import Parser, run_command

RECORD_HINT = "nox -s record, with the options of the run judged"


def judge_run(run: RunResult, folder: Path) -> list[tuple[str, str, Verdict]]:
    """(model, variant, verdict) of every measurement of ``run`` against ``folder``'s baseline file
    of the run's hardware key (none there: every speed check not judged, saying so)."""
    key = run.hardware_key
    baseline = baselines.load_for(folder, key)
    found = []
    for m in run.measurements:
        spec = spec_for(m.variant)
        entry, tolerances = baselines.lookup(baseline, m.model, spec.baseline_name, m.protocol)
        missing = (f"no baseline for {m.model}/{spec.baseline_name} on hardware {key} with protocol "
                   f"({baselines.describe_protocol(m.protocol)}) in {baselines.path_for(folder, key)}")
        verdicts = []
        if spec.compiled:
            applies = bool(entry and entry.anomaly and entry.anomaly.applies(run.software.get("torch", ""),
                                                                               run.software.get("transformers", "")))
            verdicts += speedup_verdicts(m.summary, entry, tolerances, applies, RECORD_HINT, missing)
        verdicts += time_verdicts(m.summary, entry, tolerances, RECORD_HINT, missing, compiled=spec.compiled,
                                  reference=spec.reference, on_cuda=run.on_cuda)
        verdicts.append(wer_verdict(m.summary, entry, tolerances, m.model))
        found += [(m.model, m.variant, v) for v in verdicts]
    return found


def exit_status(verdicts: list[tuple[str, str, Verdict]], strict: bool) -> int:
    if any(v.outcome.fails for _, _, v in verdicts):
        return EXIT_REGRESSION
    if strict and any(v.speed and not v.outcome.judged for _, _, v in verdicts):
        return EXIT_NOT_JUDGED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m whisper_perf.commands.judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results file (results/runs/<hardware key>/<run>.json)")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"), metavar="DIR",
                        help="folder of baseline files (default: baselines/ here, the project folder)")
    parser.add_argument("--strict-gate", action="store_true",
                        help="a speed check that could not be judged fails with exit status 7, as in the suite")
    args = parser.parse_args(argv)
    run = load_run(args.results)
    verdicts = judge_run(run, args.baselines)
    print(f"{args.results} ({run.hardware_key}, torch {run.software.get('torch')}, transformers "
          f"{run.software.get('transformers')}) against {baselines.path_for(args.baselines, run.hardware_key)}:")
    print(verdict_table(verdicts))
    print(Tally.of([v for _, _, v in verdicts], 0, run.hardware_key).text())
    return exit_status(verdicts, args.strict_gate)


if __name__ == "__main__":
    sys.exit(run_command(main))
