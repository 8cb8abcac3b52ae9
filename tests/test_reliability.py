"""Faults: a writer killed mid-write, a run terminated mid-way, a variant whose compile fails, a
variant whose build crashes the interpreter.  Real processes, real signals, real broken toolchains."""

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_bug_report import run_repro
from suite_runs import ROOT, outcomes, run_suite

from whisper_perf import files
from whisper_perf.judge import baselines
from whisper_perf.record import baseline_recording
from whisper_perf.record.results import load_run


def _baseline_text(key: str, version: str) -> str:
    # notes long enough that a write takes a while, so that kills land inside it
    entry = baselines.Entry(model="tiny.en", variant="compiled", protocol={"v": version}, seconds=1.0, wer=0.1)
    return baselines.BaselineFile(key, notes=version * 2_000_000, entries=[entry]).to_json()


def test_a_writer_killed_at_any_moment_leaves_the_old_or_the_new_baseline_complete(tmp_path):
    key = "cpu-fault-injection"
    path = baselines.path_for(tmp_path, key)
    old, new = _baseline_text(key, "o"), _baseline_text(key, "n")
    files.replace_atomically(path, old)
    writer = textwrap.dedent(f"""
        import sys
        from pathlib import Path

        from whisper_perf import files
        old, new = Path(sys.argv[1]).read_text(), Path(sys.argv[2]).read_text()
        i = 0
        while True:
            files.replace_atomically(Path({str(path)!r}), new if i % 2 == 0 else old)
            i += 1
    """)
    (tmp_path / "old.txt").write_text(old)
    (tmp_path / "new.txt").write_text(new)
    rng = random.Random(7)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path / "old.txt"), str(tmp_path / "new.txt")])
        time.sleep(rng.uniform(0.5, 1.5))  # past the imports, somewhere inside a write
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the writer was not running when killed"
        text = path.read_text()
        assert text in (old, new), f"half-written baseline after a kill ({len(text)} bytes)"
        assert baselines.load(path, key).hardware_key == key
    # a killed writer cannot remove its temporary file; the next write removes such leftovers
    files.replace_atomically(path, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "old.txt", "new.txt"])


def test_two_recordings_at_once_keep_both_sets_of_entries(tmp_path):
    """Two processes recording into the same hardware file at the same time (read, add, write):
    every entry of both survives."""
    recorder = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from whisper_perf.judge import baselines
        from whisper_perf.record import baseline_recording
        for i in range(25):
            entry = baselines.Entry(model="tiny.en", variant=f"{{sys.argv[1]}}-{{i}}", protocol={{"utterances": 1}}, seconds=1.0, wer=0.1)
            baseline_recording.record(Path({str(tmp_path)!r}), "cpu-concurrent", "test", [entry])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", recorder, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    variants = {e.variant for e in baselines.load(tmp_path / "cpu-concurrent.json").entries}
    assert variants == {f"{name}-{i}" for name in "ab" for i in range(25)}


def test_a_run_terminated_while_recording_keeps_the_baseline_and_leaves_nothing_half_written(tmp_path):
    folder, results = tmp_path / "baselines", tmp_path / "results"

    def record(rounds: int) -> list[str]:
        return [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-v", "--record",
                "--variant", "eager", "--limit", "2", "--rounds", str(rounds), "--compile-latency", "never",
                "--busy-threshold", "off", "--baselines", str(folder), "--results-dir", str(results)]

    # a baseline to protect: the entry the recording below would replace if it completed
    from whisper_perf.inputs.hardware import detect_hardware

    hardware = detect_hardware("cpu")
    protocol = {"dataset": "short", "utterances": 2, "max_new_tokens": 128, "fixed_work": False, "dtype": "float32",
                "batch_size": 1}
    entry = baselines.Entry(model="tiny.en", variant="eager", protocol=protocol, seconds=9.99, wer=0.05)
    key_file, _ = baseline_recording.record(folder, hardware.key, hardware.device_name, [entry])
    before = key_file.read_bytes()
    header, timing = "whisper_perf: machine before timing", "whisper_perf: timing eager: round 1 of 2 done"
    timed = "whisper_perf: diagnosing eager"
    # while the model loads; during the timed calls (the second round); after eager's timed rounds
    # (a whole measurement)
    for mark, seconds_after in ((header, 0.5), (timing, 0.0), (timed, 0.0)):
        proc = subprocess.Popen(record(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = ""
        for line in proc.stdout:
            output += line
            if line.startswith(mark):
                break
        time.sleep(seconds_after)
        proc.send_signal(signal.SIGTERM)
        output += proc.stdout.read()
        proc.wait(timeout=120)
        assert proc.returncode == 2, output[-3000:]  # interrupted, as with Ctrl-C
        assert "terminated by signal 15" in output, output[-3000:]
        assert key_file.read_bytes() == before, "a terminated recording changed the baseline"
        if mark == timed:
            assert "Not recording: the run was interrupted" in output, output[-3000:]
        assert not [p for p in tmp_path.rglob("*.tmp")], "a half-written file was left behind"
        for run_file in results.glob("*/*.json"):  # every results file is complete JSON
            json.loads(run_file.read_text())
        if seconds_after == 0.5:  # cut while the model loads: its results file names what it never reached
            (run_file,) = results.glob("*/*.json")
            run = load_run(run_file)
            assert run.measurements == [] and run.exit_status == 2 and run.unreached() == [("tiny.en", "eager")]
            assert run.headline() == "NOTHING MEASURED: 1 never reached (the run was interrupted): tiny.en/eager"


def test_a_run_cut_short_while_measuring_compile_latency_keeps_its_verdicts(tmp_path):
    """The first A/A run on a GPU was stopped by its time limit while it measured cold / warm
    compile latency (minutes per variant), and had judged nothing: the verdicts came after the
    diagnostics.  They run first now, so a run cut there still holds its speed and WER verdicts."""
    results = tmp_path / "results"
    command = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-v", "--variant", "compiled",
               "--limit", "1", "--rounds", "2", "--compile-latency", "always", "--busy-threshold", "off",
               "--results-dir", str(results), "-k", "not test_diagnose"]  # straight to the latency: no diagnostic calls
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    for line in proc.stdout:
        output += line
        if "cold and warm compile latency in two fresh processes" in line:
            break
    proc.send_signal(signal.SIGTERM)
    output += proc.stdout.read()
    proc.wait(timeout=300)
    assert proc.returncode == 2, output[-3000:]
    (run_file,) = results.glob("*/*.json")
    checks = {v["check"] for v in json.loads(run_file.read_text())["verdicts"] if v["variant"] == "compiled"}
    assert {"compiled vs eager", "wer"} <= checks, (checks, output[-3000:])


def test_a_variant_that_fails_to_compile_fails_alone_and_the_others_still_report_and_record(tmp_path):
    """A C++ toolchain that does not work (CXX=/bin/false) and an empty compile cache: inductor
    cannot build the compiled variant; it fails once with the error, eager runs, reports, and is
    recorded: one failing variant does not block the baseline of the others."""
    results, folder = tmp_path / "results", tmp_path / "baselines"
    result = run_suite("--record", "--variant", "eager", "--variant", "compiled", "--limit", "1", "--rounds", "1",
                       "--baselines", str(folder), "--results-dir", str(results), "--compile-latency", "never",
                       env={"CXX": "/bin/false", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert result.returncode == 1, result.output[-4000:]
    found = outcomes(result)
    assert found["test_generate[tiny.en-eager]"] == "PASSED"
    assert found["test_generate[tiny.en-compiled]"] == "ERROR"
    assert "tiny.en/compiled could not be built on cpu-" in result.output
    (run_file,) = results.glob("*/*.json")
    data = json.loads(run_file.read_text())
    (failure,) = data["failures"]
    assert failure["variant"] == "compiled" and failure["stage"] == "build"
    assert [m["variant"] for m in data["measurements"]] == ["eager"]
    assert "## Variants that failed" in run_file.with_suffix(".md").read_text()
    # built once: the variant's later tests fail fast with the recorded error
    assert result.output.count("tiny.en/compiled could not be built") >= 2
    (baseline_path,) = folder.glob("*.json")
    recorded = baselines.load(baseline_path)
    assert [(e.model, e.variant) for e in recorded.entries] == [("tiny.en", "eager")]
    assert "Not recorded: tiny.en/compiled failed in this run" in result.output


CRASHING_CONSTRUCTOR = """#include <signal.h>
__attribute__((constructor)) static void whisper_perf_test_crash(void) { raise(SIGSEGV); }
"""


def test_a_variant_whose_build_crashes_the_interpreter_fails_alone_when_built_apart(tmp_path):
    """A real segmentation fault in a compiled variant's build: every C++ kernel inductor compiles
    gets a constructor that raises SIGSEGV when the library is loaded (the published recipe dies so
    on an H100 while torch records its CUDA graphs).  With --isolate-builds the fresh process dies,
    not the suite: compiled fails with the signal and where it struck, eager is measured, reported
    and recorded.  The model is a local folder (the converted tiny.en), which the fresh process must
    load as the user named it, not by its short name."""
    from whisper_perf.inputs.convert import converted_embedded_model

    model = converted_embedded_model()
    header = tmp_path / "crash.h"
    header.write_text(CRASHING_CONSTRUCTOR)
    compiler = tmp_path / "cxx"
    compiler.write_text(f'#!/bin/sh\nexec {shutil.which("g++")} -include {header} "$@"\n')
    compiler.chmod(0o755)
    results, folder = tmp_path / "results", tmp_path / "baselines"
    result = run_suite("--record", "--model", str(model), "--variant", "eager", "--variant", "compiled", "--limit", "1",
                       "--rounds", "1", "--baselines", str(folder), "--results-dir", str(results),
                       "--isolate-builds", "always",
                       env={"CXX": str(compiler), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert result.returncode == 1, result.output[-4000:]
    found = outcomes(result)
    assert found[f"test_generate[{model.name}-eager]"] == "PASSED"
    assert found[f"test_generate[{model.name}-compiled]"] == "ERROR"
    (run_file,) = results.glob("*/*.json")
    (failure,) = json.loads(run_file.read_text())["failures"]
    assert failure["variant"] == "compiled" and failure["stage"] == "build"
    assert "killed by SIGSEGV in " in failure["error"] and "_load_library" in failure["error"], failure["error"]
    assert "--isolate-builds" in failure["error"]
    assert re.search(r"fresh process of compiled failed after \d+\.\d s", result.output)  # what isolating cost
    (baseline_path,) = folder.glob("*.json")
    assert [e.variant for e in baselines.load(baseline_path).entries] == ["eager"]
    # the folder to file upstream: its repro.py, alone in a fresh process, crashes the same way
    (repro,) = json.loads(run_file.read_text())["bug_reports"].values()
    assert f"compiled: bug report for upstream in {repro}" in result.output
    report = (Path(repro) / "report.md").read_text()
    assert report.startswith(f"# {model.name} compiled crashes (build)") and "killed by SIGSEGV" in report
    done = run_repro(Path(repro), tmp_path, env={"CXX": str(compiler), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "c2")})
    assert done.returncode == -signal.SIGSEGV, done.stdout[-2000:] + done.stderr[-3000:]
