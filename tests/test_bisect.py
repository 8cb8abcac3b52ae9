"""Bisecting released versions: the search on synthetic histories with known answers, the version
list from a real (local) package index, and one end-to-end bisect with real pip, real overlay
environments and the real suite, over a package whose later releases slow generate() down."""

import base64
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from whisper_perf import package_index
from whisper_perf.commands import bisect, bisect_report
from whisper_perf.commands.bisection import Probe, State, measure_until_decided, search
from whisper_perf.errors import EXIT_REGRESSION, EXIT_USAGE
from whisper_perf.judge.stats import change_interval
from whisper_perf.judge.verdicts import worse_or_not

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = [f"1.{i}" for i in range(12)]  # 1.0 (good end) .. 1.11 (bad end)


def step_at(first_bad: str, skipped=(), log=None):
    """An oracle with a step: every version from ``first_bad`` on is bad; ``skipped`` cannot be installed."""
    def oracle(version: str) -> Probe:
        if log is not None:
            log.append(version)
        if version in skipped:
            return Probe(version, State.SKIPPED, "cannot install")
        bad = Version(version) >= Version(first_bad)
        return Probe(version, State.BAD if bad else State.GOOD, repeats=1)
    return oracle


# ---- the search ----

@pytest.mark.parametrize("first_bad", VERSIONS[1:])
def test_search_finds_the_step_wherever_it_is_in_few_probes(first_bad):
    probed = []
    outcome = search(VERSIONS, step_at(first_bad, log=probed))
    assert outcome.verdict == "found" and outcome.first_bad == first_bad
    assert outcome.last_good == VERSIONS[VERSIONS.index(first_bad) - 1]
    assert probed[0] == VERSIONS[-1]  # the bad end first
    assert len(probed) <= 1 + int(np.ceil(np.log2(len(VERSIONS) - 1)))  # 11 gaps: at most 4 probes + the end


def test_a_range_whose_bad_end_is_good_shows_no_regression():
    outcome = search(VERSIONS, step_at("9.0"))
    assert outcome.verdict == "no regression" and len(outcome.probes) == 1 and outcome.first_bad is None


def test_an_uninstallable_version_is_stepped_around():
    probed = []
    outcome = search(VERSIONS, step_at("1.9", skipped={"1.6"}, log=probed))  # 1.6: the first middle
    assert "1.6" in probed and outcome.verdict == "found"
    assert (outcome.last_good, outcome.first_bad) == ("1.8", "1.9")


def test_undecidable_versions_at_the_boundary_are_named_not_guessed():
    outcome = search(VERSIONS, step_at("1.9", skipped={"1.7", "1.8"}))
    assert outcome.verdict == "undecided" and outcome.first_bad == "1.9" and outcome.last_good == "1.6"
    assert outcome.candidates == ["1.7", "1.8", "1.9"]
    assert bisect_report.conclusion(outcome, "pkg", newer_is_bad=True).startswith(
        "undecided: the first bad version is one of 1.7, 1.8, 1.9 (last good: 1.6;")


def test_an_undecided_fix_names_the_releases_it_may_have_come_with():
    # 1.11 good end, 1.0 bad end (a fix); 1.9 cannot be decided, 1.8 and older are bad
    order = [f"1.{i}" for i in range(11, -1, -1)]
    outcome = search(order, lambda v: Probe(v, State.GOOD if Version(v) >= Version("1.10") else
                                            State.INCONCLUSIVE if v == "1.9" else State.BAD))
    assert (outcome.last_good, outcome.first_bad, outcome.candidates) == ("1.10", "1.8", ["1.9", "1.8"])
    assert bisect_report.conclusion(outcome, "pkg", newer_is_bad=False) == (
        "undecided: fixed in one of 1.10, 1.9 (the newest bad version: 1.8; 1.9 could not be decided)")


def test_a_fix_is_searched_from_the_newer_good_end():
    # failure criterion: 1.0-1.4 fail, 1.5 on work; --good 1.11 --bad 1.0 (the good end is checked too)
    order = [str(v) for v in package_index.between([Version(v) for v in VERSIONS], Version("1.11"), Version("1.0"))]
    outcome = search(order, lambda v: Probe(v, State.GOOD if Version(v) >= Version("1.5") else State.BAD),
                     check_good_end=True)
    assert order[0] == "1.11" and outcome.verdict == "found"
    assert (outcome.last_good, outcome.first_bad) == ("1.5", "1.4")
    assert bisect_report.conclusion(outcome, "pkg", newer_is_bad=False).startswith("fixed in **pkg 1.5**")


# ---- a probe measured again while inconclusive: synthetic rounds of known truth ----

def synthetic_measure(version: str, slowdown: float, noise: float, rng, tolerance: float = 0.15):
    """measure(repeat) for bisection.measure_until_decided: each repeat adds 3 rounds of 4 utterances
    to both sides, the probe's times ``slowdown`` x the good end's, with ``noise`` relative spread;
    judged by the real rule (stats.change_interval, verdicts.worse_or_not)."""
    before, after = [], []

    def measure(repeat: int) -> Probe:
        for _ in range(3):
            before.append(list(1.0 * (1 + noise * rng.standard_normal(4))))
            after.append(list(slowdown * (1 + noise * rng.standard_normal(4))))
        interval = change_interval(np.array(before), np.array(after), resamples=2000)
        found = worse_or_not(interval, 1.0, tolerance, higher_is_better=False)
        state = {"worse": State.BAD, "not worse": State.GOOD, "unsure": State.INCONCLUSIVE}[found]
        return Probe(version, state, change=interval.as_dict(), repeats=repeat)
    return measure


def test_an_inconclusive_probe_is_measured_again_until_decided():
    rng = np.random.default_rng(7)
    probes = []
    for slowdown in (1.0, 1.25):  # 25% slower, tolerance 15%: near enough that 3 rounds often cannot tell
        for n in range(6):
            probes.append((slowdown, measure_until_decided(synthetic_measure(f"{slowdown}-{n}", slowdown, 0.15, rng),
                                                           max_repeats=6)))
    wrong = [p for slowdown, p in probes if p.state == (State.GOOD if slowdown > 1 else State.BAD)]
    assert not wrong  # never a guess the other way
    resolved_later = [p for _, p in probes if p.state.decided and p.repeats > 1]
    assert len(resolved_later) >= 3  # inconclusive at first, then decided by more rounds
    assert any(p.repeats == 1 for _, p in probes)  # and a clear one is not measured again


def test_a_probe_still_unsure_at_its_budget_stays_inconclusive():
    probe = measure_until_decided(synthetic_measure("x", 1.15, 0.3, np.random.default_rng(1)), max_repeats=2)
    assert probe.state == State.INCONCLUSIVE and probe.repeats == 2


def test_worse_or_not_reads_the_whole_interval_against_the_tolerance():
    from whisper_perf.judge.stats import Interval

    within, beyond, straddling = Interval(1.02, 0.99, 1.05, 0.95), Interval(1.3, 1.2, 1.4, 0.95), \
        Interval(1.1, 1.0, 1.2, 0.95)
    assert [worse_or_not(i, 1.0, 0.15, False) for i in (within, beyond, straddling)] == ["not worse", "worse", "unsure"]
    assert worse_or_not(Interval(0.8, 0.75, 0.85, 0.95), 1.0, 0.1, True) == "worse"  # speedup fell beyond 10%
    assert worse_or_not(Interval(0.97, 0.95, 0.99, 0.95), 1.0, 0.1, True) == "not worse"


# ---- the versions a package index lists ----

def _wheel(folder: Path, name: str, version: str, files: dict[str, str], requires=(), tag="py3-none-any") -> str:
    """A real wheel of ``name`` ``version`` holding ``files`` (and a pytest11 entry point when it
    holds a plugin module)."""
    info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                            *(f"Requires-Dist: {r}\n" for r in requires)])
    contents[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
    if "slowprobe_plugin.py" in files:
        contents[f"{info}/entry_points.txt"] = "[pytest11]\nslowprobe = slowprobe_plugin\n"
    digest = lambda text: base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()  # noqa: E731
    record = [f"{path},sha256={digest(text)},{len(text.encode())}" for path, text in contents.items()]
    contents[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    file_name = f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(folder / file_name, "w") as wheel:
        for path, text in contents.items():
            wheel.writestr(path, text)
    return file_name


def _index(root: Path, name: str, releases: list[tuple[str, dict, dict]]) -> str:
    """A PEP 503 index at ``root``: releases of (version, files, options: yanked, requires, tag)."""
    files, page = root / "files", root / "simple" / name
    files.mkdir(parents=True)
    page.mkdir(parents=True)
    anchors = []
    for version, contents, options in releases:
        file_name = _wheel(files, name, version, contents, options.get("requires", ()), options.get("tag", "py3-none-any"))
        yanked = ' data-yanked=""' if options.get("yanked") else ""
        anchors.append(f'<a href="../../files/{file_name}"{yanked}>{file_name}</a>')
    (page / "index.html").write_text("<html><body>\n" + "\n".join(anchors) + "\n</body></html>\n")
    return (root / "simple").as_uri()


def test_released_versions_leave_out_yanked_pre_releases_and_foreign_wheels(tmp_path):
    url = _index(tmp_path, "probe", [("1.0", {}, {}), ("1.1", {}, {"yanked": True}), ("1.2", {}, {}),
                                     ("2.0rc1", {}, {}), ("2.0", {}, {}), ("3.0", {}, {"tag": "cp27-cp27m-win32"})])
    sources = package_index.Sources((url,), ())
    assert package_index.released_versions("probe", sources) == [Version("1.0"), Version("1.2"), Version("2.0")]
    assert Version("2.0rc1") in package_index.released_versions("probe", sources, pre=True)
    with pytest.raises(package_index.EnvironmentUnavailable, match="no package index lists missing"):
        package_index.released_versions("missing", sources)


def test_an_end_that_is_not_a_release_is_a_usage_error_naming_the_releases_near_it(tmp_path, capsys):
    url = _index(tmp_path / "index", "probe", [("1.0", {}, {}), ("1.2", {}, {}), ("2.0", {}, {})])
    status = bisect.run_command(bisect.main, ["--package", "probe", "--good", "1.1", "--bad", "2.0", "--index-url", url,
                                              "--out", str(tmp_path / "out"), "--root", str(ROOT)])
    assert status == EXIT_USAGE
    assert "--good 1.1: not a release of probe" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- end to end: real pip, real overlays, the real suite ----

# nox -s tests runs this bisect beside another test on two cores, and each probe's run and the
# good end's run one after the other, so the load on the machine differs between them: an
# unchanged release measured 1.69x the good end's time there (1.3 against 1.0; alone they agree
# within 4%), and a core shared by two processes at most halves a run's speed.  So a release
# counts as slower beyond 1.9x (--tolerance 0.9, the most a time tolerance may be), and the slow
# one is 5x as slow: beyond it even when its own run had the machine to itself and the good end's
# had half of it (2.5x).
SLOW_PLUGIN = """import time
import transformers

_generate = transformers.WhisperForConditionalGeneration.generate


def generate(self, *args, **kwargs):  # this release's regression: every generate() takes 5 times as long
    start = time.perf_counter()
    out = _generate(self, *args, **kwargs)
    end = time.perf_counter() + 4 * (time.perf_counter() - start)
    while time.perf_counter() < end:  # busy, as slow code is (a sleep would let the CPU clock down)
        pass
    return out


transformers.WhisperForConditionalGeneration.generate = generate
"""


def test_bisect_finds_the_first_slow_release_with_the_real_suite(tmp_path):
    fast, slow = {"slowprobe_plugin.py": "# no change\n"}, {"slowprobe_plugin.py": SLOW_PLUGIN}
    url = _index(tmp_path / "index", "slowprobe", [
        ("1.0", fast, {}), ("1.1", fast, {}),
        ("1.2", fast, {"requires": ["slowprobe-dependency-that-does-not-exist"]}),  # cannot be installed
        ("1.3", fast, {}), ("1.3.1", slow, {"yanked": True}), ("2.0rc1", slow, {}), ("2.0", slow, {})])
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "whisper_perf.commands.bisect", "--package", "slowprobe",
                           "--good", "1.0", "--bad", "2.0", "--criterion", "time", "--variant", "eager",
                           "--tolerance", "0.9",  # see SLOW_PLUGIN
                           "--index-url", url, "--environments", str(tmp_path / "envs"), "--out", str(out),
                           "--root", str(ROOT), "--", "--limit", "1", "--rounds", "2", "--busy-threshold", "off",
                           "-k", "not test_diagnostics"],  # the time criterion needs none of the diagnostic calls
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == EXIT_REGRESSION, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "bisect.json").read_text())
    assert report["order"] == ["1.0", "1.1", "1.2", "1.3", "2.0"]  # no yanked, no pre-release
    outcome = report["outcome"]
    assert (outcome["last_good"], outcome["first_bad"], outcome["verdict"]) == ("1.3", "2.0", "found")
    states = {p["version"]: p["state"] for p in outcome["probes"]}
    assert states == {"2.0": "bad", "1.2": "skipped", "1.3": "good"}  # the middle first, then stepped around
    slowed = next(p for p in outcome["probes"] if p["version"] == "2.0")["change"]
    assert slowed["low"] > 1 + report["tolerance"]  # 5x as long: far beyond the tolerance
    text = (out / "bisect.md").read_text()
    assert "first bad version: **slowprobe 2.0** (last good: 1.3)" in text
    assert "slowprobe-dependency-that-does-not-exist" in text  # why 1.2 was skipped
    assert "- 2.0, 1.0, 1.3: nothing else" in text  # the overlays installed the package alone
    assert 'nox -s upgrade -- --from "slowprobe==1.3" --to "slowprobe==2.0"' in text
    assert (out / "bisect.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "probes").iterdir()) == ["1.3", "2.0"]


EXTRA_OPERATOR_PLUGIN = """import torch
import transformers

_forward = transformers.WhisperForConditionalGeneration.forward


def forward(self, *args, **kwargs):  # this release's change: one more operator in every decoder step
    out = _forward(self, *args, **kwargs)
    out.logits = torch.nn.functional.hardtanh(out.logits, -1e4, 1e4)  # same values: only the code differs
    return out


transformers.WhisperForConditionalGeneration.forward = forward
"""


def test_bisect_by_kernels_names_the_release_that_changed_the_code_run(tmp_path):
    """--criterion kernels: a release that adds one operator to every decoder step, transcribing
    exactly as before and too small to time: found in one pair of runs, the change named."""
    url = _index(tmp_path / "index", "opprobe", [("1.0", {"slowprobe_plugin.py": "# no change\n"}, {}),
                                                 ("1.1", {"slowprobe_plugin.py": EXTRA_OPERATOR_PLUGIN}, {})])
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "whisper_perf.commands.bisect", "--package", "opprobe",
                           "--good", "1.0", "--bad", "1.1", "--criterion", "kernels", "--variant", "eager",
                           "--index-url", url, "--environments", str(tmp_path / "envs"), "--out", str(out),
                           "--root", str(ROOT), "--", "--limit", "1", "--rounds", "1", "--busy-threshold", "off"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == EXIT_REGRESSION, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "bisect.json").read_text())
    outcome = report["outcome"]
    assert (outcome["last_good"], outcome["first_bad"], outcome["verdict"]) == ("1.0", "1.1", "found")
    (probe,) = outcome["probes"]
    assert probe["state"] == "bad" and probe["repeats"] == 1  # exact: one pair of runs decides
    before, after = map(float, re.search(r"aten ops per decode step ([\d.]+) -> ([\d.]+)", probe["detail"]).groups())
    assert after == pytest.approx(before + 1)  # the one hardtanh per step, counted
    text = (out / "bisect.md").read_text()
    assert "first bad version: **opprobe 1.1** (last good: 1.0)" in text and "kernels (any change" in text
    assert '--to "opprobe==1.1" --repeats 2 --criterion kernels --' in text
