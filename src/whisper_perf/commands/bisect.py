"""Which release did it: bisect the released versions of torch or transformers between a good and
a bad one, with the suite's side-by-side comparison as the oracle.

    nox -s bisect -- --package transformers --good 4.52.1 --bad 5.24.0
    nox -s bisect -- --package transformers --good 4.52.1 --bad 5.24.0 --criterion eager-time --tolerance 0.05
    nox -s bisect -- --package transformers --good 5.24.0 --bad 4.46.2 --criterion failure   # where it was fixed
    whisper-perf bisect --package torch --good 2.12.0 --bad 2.13.0 -- --limit 3

The versions are the releases the package index lists between the two (package_index: PEP 440
order, no pre-releases unless ``--pre``, yanked ones and ones without a file for this Python left
out).  Each probe installs one version as an overlay over the current environment
(environments.prepare_overlay: everything else held as it is, the dependencies the version needs
resolved beside it, ``.nox/bisect/<version>``, reused) and runs the suite in it and beside it in
the good end's overlay, alternating the order, each run a fresh process with empty compile caches
(commands/upgrade.py's runs).  The criterion decides:

- ``speedup`` (default), ``time`` (the variant's summed time), ``eager-time`` (its eager
  reference's): bad when the whole interval of the change lies beyond the tolerance (this
  hardware's, or ``--tolerance``), good when the whole interval lies within it, inconclusive
  otherwise: measured again (another pair of runs, the other order first) up to
  ``--max-repeats``, then stepped around if still unsure.  Looking again after each repeat would
  inflate the error of a 95% interval, so each look's interval is at 1 - 5% / max-repeats;
- ``wer``: bad when WER moved by more than the WER tolerance;
- ``kernels``: bad when the fingerprint of the code the variant ran differs from the good end's
  (the kernels inductor generated, aten ops and device kernels per decode step: see
  kernel_profile), naming what was added and removed: exact, so one pair of runs decides, and a
  change in generated code is found even where the times cannot tell;
- ``failure``: bad when the variant fails to build or run (one run per probe, no good end beside).

A version that cannot be installed, or in which the suite does not run, is skipped and stepped
around.  The bad end is probed first: a range whose bad end measures good shows no regression.

Written to ``results/bisect/<time>/`` (or ``--out``, a new folder): ``bisect.md`` (every probe
with its change, the first bad and last good version, how long, the command that reproduces the
pair with ``nox -s upgrade``), ``bisect.json``, ``bisect.png`` and each probe's runs and logs.

Exit status: 0 the range shows no regression; 1 a first bad version was found; 8 undecided
(candidates listed); 4 usage error; 6 no package index lists the package.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import environments, package_index
from ..errors import EXIT_OK, EXIT_REGRESSION, EXIT_UNDECIDED, SuiteError
from ..files import require_new_folder
from ..judge import baselines
from ..judge.stats import Interval, interval_text
from ..judge.verdicts import worse_or_not
from ..record.results import load_run
from . import Parser, comparison, run_command, upgrade
from .bisect_report import CRITERIA, MEASURES, chart, conclusion, criterion_text, render
from .bisection import Outcome, Probe, State, measure_until_decided, search


# ---- run: an oracle that installs a version and runs the suite in it ----

@dataclass
class SuiteOracle:
    """Answers "is this version good or bad?" by running the suite (bisection.search's oracle)."""

    package: str
    good: str
    criterion: str
    variant: str
    tolerance: float
    tolerances: object  # baselines.Tolerances (WER)
    max_repeats: int
    root: Path
    folder: Path
    environments: Path
    pytest_args: list[str]
    index_url: str | None = None  # --index-url: also where pip looks for the package
    installed: dict[str, str] = field(default_factory=dict)  # version -> Python, or "" when it failed

    @property
    def confidence(self) -> float:
        """Of each look at a probe's change: a probe is looked at after each of up to max_repeats
        repeats and decided at the first look that is sure, so the 5% error is spent over the
        looks (Bonferroni): all of them hold at once with 95%, whenever the probe stops."""
        return 1 - 0.05 / self.max_repeats
    install_errors: dict[str, str] = field(default_factory=dict)
    beside: dict[str, list[str]] = field(default_factory=dict)  # version -> what its overlay installed

    def python(self, version: str) -> str:
        """The overlay holding ``version`` (installed on first use); "" when it cannot be installed."""
        if version not in self.installed:
            print(f"  installing {self.package}=={version}", flush=True)
            requirement = f"{self.package}=={version}"
            if self.index_url:  # an extra index: the build of this package's editable install needs pip's own
                requirement += f" --extra-index-url {self.index_url}"
            try:
                python = environments.prepare_overlay(self.environments / f"{self.package}-{version}", requirement,
                                                      self.root, sys.executable, environments.run_quietly)
                self.installed[version] = str(python)
                self.beside[version] = environments.overlay_packages(python)
            except (RuntimeError, OSError) as exc:
                self.installed[version], self.install_errors[version] = "", str(exc)
        return self.installed[version]

    def __call__(self, version: str) -> Probe:
        start = time.monotonic()
        if not self.python(version) or (self.criterion != "failure" and not self.python(self.good)):
            failed = version if not self.python(version) else self.good
            why = self.install_errors[failed].partition(" failed: ")[2] or self.install_errors[failed]
            probe = Probe(version, State.SKIPPED, f"cannot install {self.package}=={failed}: {why}")
        else:
            sides = (upgrade.Environment(f"{self.package}=={self.good}", python=self.python(self.good)),
                     upgrade.Environment(f"{self.package}=={version}", python=self.python(version)))
            probe = measure_until_decided(lambda repeat: self._measure(version, sides, repeat), self.max_repeats)
        probe.seconds = time.monotonic() - start
        print(f"  {self.package} {version}: {probe.state.value} ({probe.detail}); {probe.repeats} repeat(s), "
              f"{probe.seconds / 60:.1f} min", flush=True)
        return probe

    def _measure(self, version: str, sides, repeat: int) -> Probe:
        """One more repeat: the probe alone (failure), else both sides in alternating order."""
        good, probed = sides
        order = [probed] if self.criterion == "failure" else [good, probed] if repeat % 2 else [probed, good]
        for env in order:
            print(f"  run {repeat} in {env.spec}", flush=True)
            upgrade.run_suite(env, self.root, self.folder / "probes" / version, self.pytest_args, repeat - 1)
        return judge(version, good, probed, repeat, self)


# ---- analyse: a probe's state from its runs ----

def judge(version: str, good, probed, repeats: int, oracle: SuiteOracle) -> Probe:
    """What the runs of ``probed`` (and beside it ``good``) say of ``version``."""
    if oracle.criterion == "failure":
        return _judge_failure(version, probed, repeats, oracle.variant)
    key = _key([good, probed], oracle.variant)
    if key is None or not probed.runs or not good.runs:
        errors = "; ".join(good.run_errors + probed.run_errors) or f"variant {oracle.variant} not measured"
        return Probe(version, State.SKIPPED, f"the suite did not run: {errors}", repeats=repeats)
    row = comparison.compare_row([good, probed], *key, oracle.tolerances, oracle.confidence)
    change = row["changes"][probed.name]
    if change["verdict"] == "failed":
        return Probe(version, State.SKIPPED, change["detail"], repeats=repeats)
    if oracle.criterion == "kernels":
        return _judge_kernels(version, change.get("kernels"), repeats)
    if oracle.criterion == "wer":
        before, after = row["sides"][good.name]["wer"], row["sides"][probed.name]["wer"]
        state = State.BAD if abs(after - before) > oracle.tolerance else State.GOOD
        return Probe(version, state, f"WER {100 * before:.2f}% -> {100 * after:.2f}%", repeats=repeats)
    return _judge_measure(version, change, repeats, oracle)


def _judge_kernels(version: str, changes: list[str] | None, repeats: int) -> Probe:
    """Exact: bad when the fingerprint of the code run differs from the good end's, naming how."""
    if changes is None:
        return Probe(version, State.SKIPPED, "no fingerprint: the suite's diagnostics did not run (leave "
                     "test_diagnostics selected)", repeats=repeats)
    return Probe(version, State.BAD if changes else State.GOOD, comparison.kernels_text(changes), repeats=repeats)


def _key(envs, variant: str) -> tuple[str, str] | None:
    return next((k for k in comparison.measured(envs) if k[1] == variant), None)


def _judge_failure(version: str, probed, repeats: int, variant: str) -> Probe:
    run = probed.runs[-1] if probed.runs else None
    if run is None:
        return Probe(version, State.SKIPPED, f"the suite did not run: {'; '.join(probed.run_errors)}", repeats=repeats)
    failure = next((f for f in run.failures if f.variant == variant), None)
    if failure is not None:
        return Probe(version, State.BAD, f"{variant} failed to {failure.stage}: {failure.error[:300]}", repeats=repeats)
    if not any(m.variant == variant for m in run.measurements):
        return Probe(version, State.SKIPPED, f"{variant} was not measured (skipped by the suite)", repeats=repeats)
    return Probe(version, State.GOOD, f"{variant} builds and runs", repeats=repeats)


def _judge_measure(version: str, change: dict, repeats: int, oracle: SuiteOracle) -> Probe:
    key, label, _, higher_is_better = MEASURES[oracle.criterion]
    interval = Interval.from_dict(change.get(key))
    if interval is None:
        return Probe(version, State.INCONCLUSIVE, f"no {label} change: {change.get('detail', '')}", repeats=repeats)
    found = worse_or_not(interval, 1.0, oracle.tolerance, higher_is_better)
    state = {"worse": State.BAD, "not worse": State.GOOD, "unsure": State.INCONCLUSIVE}[found]
    detail = (f"{label} x{interval_text(interval, '', 3)} against {oracle.package} {oracle.good} "
              f"(tolerance {oracle.tolerance:.0%})")
    return Probe(version, state, detail, change=interval.as_dict(), repeats=repeats)


# ---- main ----

def _parser() -> Parser:
    parser = Parser(prog="whisper-perf bisect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", required=True, help="the package to bisect: torch or transformers (any on the index)")
    parser.add_argument("--good", required=True, help="a version that is good")
    parser.add_argument("--bad", required=True, help="a version that is bad (older than --good to find a fix)")
    parser.add_argument("--criterion", choices=CRITERIA, default="speedup", help="what makes a version bad")
    parser.add_argument("--variant", default="compiled", help="the variant judged (default compiled)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="relative change that counts (default: this hardware's tolerance for the criterion)")
    parser.add_argument("--max-repeats", type=int, default=3, help="pairs of runs for an inconclusive probe (default 3)")
    parser.add_argument("--pre", action="store_true", help="include pre-releases")
    parser.add_argument("--index-url", default=None, help="list versions from this index only (default: pip's configuration)")
    parser.add_argument("--environments", type=Path, default=None, help="where the overlays live (default .nox/bisect)")
    parser.add_argument("--out", type=Path, default=None, help="a new folder for the report (default results/bisect/<time>)")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("pytest_args", nargs="*", help="pytest arguments for every run (after --)")
    return parser


def _release_order(parser: Parser, args) -> tuple[list[str], str]:
    from packaging.version import InvalidVersion, Version

    sources = (package_index.Sources((args.index_url,), ()) if args.index_url
               else package_index.configured_sources())
    listed = package_index.released_versions(args.package, sources, pre=args.pre)
    try:
        good, bad = Version(args.good), Version(args.bad)
    except InvalidVersion as exc:
        parser.error(f"--good/--bad: {exc}")
    for option, version in (("--good", good), ("--bad", bad)):
        if version not in listed:
            parser.error(f"{option} {version}: not a release of {args.package} that {', '.join(sources.indexes)} "
                         f"list for this Python (near it: {', '.join(_near(listed, version))})")
    if good == bad:
        parser.error("--good and --bad are the same version")
    order = [str(v) for v in package_index.between(listed, good, bad)]
    return order, ", ".join(sources.indexes + sources.find_links)


def _near(listed: list, version) -> list[str]:
    """The listed releases next to ``version``: what the user may have meant."""
    at = sum(1 for v in listed if v < version)
    return [str(v) for v in listed[max(0, at - 2):at + 2]] or ["none"]


def _oracle(args, folder: Path) -> SuiteOracle:
    tolerances = baselines.tolerances_for(args.root / "baselines", _hardware_key())
    field_name = MEASURES.get(args.criterion, (None, None, "wer"))[2]
    pytest_args = list(args.pytest_args)
    if "--variant" not in pytest_args:
        pytest_args = ["--variant", args.variant, *pytest_args]
    if "--compile-latency" not in pytest_args:
        pytest_args = ["--compile-latency", "never", *pytest_args]
    return SuiteOracle(args.package, args.good, args.criterion, args.variant,
                       args.tolerance if args.tolerance is not None else getattr(tolerances, field_name), tolerances,
                       args.max_repeats, args.root, folder, args.environments or args.root / ".nox" / "bisect",
                       pytest_args, args.index_url)


def _hardware_key() -> str:
    from ..inputs.hardware import detect_hardware

    return detect_hardware("auto").key


def bug_reports_of(folder: Path, version: str) -> list[str]:
    """The bug-report folders (bug_report.py) that the runs of ``version``'s probe wrote."""
    found = []
    for path in sorted((Path(folder) / "probes" / version).glob("**/*.json")):
        try:
            found += list(load_run(path).bug_reports.values())
        except SuiteError:  # not a results file (pytest-benchmark's own, a damaged one)
            continue
    return found


def _report(args, oracle: SuiteOracle, outcome: Outcome, order: list[str], listed_from: str, minutes: float) -> dict:
    from packaging.version import Version

    newer_is_bad = Version(args.bad) > Version(args.good)
    base = upgrade.library_versions(sys.executable)
    reproduce = None
    if outcome.verdict == "found" and args.criterion != "failure":
        criterion = " --criterion kernels" if args.criterion == "kernels" else ""
        reproduce = (f'nox -s upgrade -- --from "{args.package}=={outcome.last_good}" --to '
                     f'"{args.package}=={outcome.first_bad}" --repeats 2{criterion} -- {" ".join(oracle.pytest_args)}')
    return {"package": args.package, "good": args.good, "bad": args.bad, "criterion": args.criterion,
            "variant": args.variant, "tolerance": oracle.tolerance, "confidence": oracle.confidence,
            "hardware_key": _hardware_key(),
            "base": ", ".join([*(f"{name} {version}" for name, version in base.items() if name != args.package),
                               f"Python {sys.version.split()[0]}"]) + " (the current environment's)",
            "order": order, "listed_from": listed_from, "pytest_args": oracle.pytest_args, "minutes": minutes,
            "outcome": {"verdict": outcome.verdict, "last_good": outcome.last_good, "first_bad": outcome.first_bad,
                        "candidates": outcome.candidates, "probes": [p.as_dict() for p in outcome.probes]},
            "conclusion": conclusion(outcome, args.package, newer_is_bad), "beside": oracle.beside,
            "reproduce": reproduce,
            "bug_reports": bug_reports_of(oracle.folder, outcome.first_bad) if outcome.first_bad else []}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_repeats < 1:
        parser.error("--max-repeats must be at least 1")
    if args.tolerance is not None and not 0 < args.tolerance < 1:
        parser.error(f"--tolerance {args.tolerance}: a fraction in (0, 1), e.g. 0.05")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.out or args.root / "results" / "bisect" / f"{stamp}-{os.getpid()}"
    require_new_folder(folder)
    order, listed_from = _release_order(parser, args)
    folder.mkdir(parents=True)
    oracle = _oracle(args, folder)
    print(f"bisect {args.package}: {len(order)} releases from {order[0]} (good) to {order[-1]} (bad), "
          f"criterion {criterion_text(args.criterion, oracle.tolerance)}", flush=True)
    start = time.monotonic()
    outcome = search(order, oracle, check_good_end=args.criterion == "failure")
    report = _report(args, oracle, outcome, order, listed_from, (time.monotonic() - start) / 60)
    (folder / "bisect.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    chart(report, folder / "bisect.png")
    text = render(report)
    (folder / "bisect.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"Written to {folder}")
    return {"found": EXIT_REGRESSION, "no regression": EXIT_OK}.get(outcome.verdict, EXIT_UNDECIDED)


if __name__ == "__main__":
    sys.exit(run_command(main))
