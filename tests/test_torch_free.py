"""Reading results needs no torch: judge, merge and history, and the report they render, run in a
process where ``import torch`` fails (a laptop reviewing a GPU's results, a CI job that only
merges).  The commands run for real, as subprocesses, on the committed H100 and H200 results.
And a bad option of the suite is answered before torch, transformers or scipy loads."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "docs" / "measurements"
CUT = MEASURED / "cuda-sm_90-nvidia-h100-80gb-hbm3" / "20261127T044757.932220Z-2662.json"

BLOCK = '''
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(name.split(".")[0] + " is not installed here")
        return None

sys.meta_path.insert(0, _Blocked())
'''


def _without(tmp_path: Path, *args: str, blocked=("torch",)) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCK.format(blocked=set(blocked)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_reading_results_imports_no_torch(tmp_path):
    blocked = _without(tmp_path, "-c", "import torch")
    assert blocked.returncode == 1 and "torch is not installed here" in blocked.stderr  # the process has no torch
    imported = _without(tmp_path, "-c", "import whisper_perf.record.report, whisper_perf.commands.judge, "
                              "whisper_perf.commands.merge, whisper_perf.commands.history")
    assert imported.returncode == 0, imported.stderr


def test_judge_merge_and_history_run_without(tmp_path):
    judged = _without(tmp_path, "-m", "whisper_perf", "judge", str(CUT), "--baselines",
                            str(ROOT / "tests" / "data" / "h100"))
    assert judged.returncode == 2, judged.stderr  # the run was interrupted; judging again cannot undo that
    assert judged.stdout.splitlines()[-1] == "13 checks passed, 0 failed, 0 not judged", judged.stdout
    merged = _without(tmp_path, "-m", "whisper_perf", "merge", str(MEASURED), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    report = (tmp_path / "merged" / "merged.md").read_text()
    assert "cuda-sm_90-nvidia-h100-80gb-hbm3" in report and "cuda-sm_90-nvidia-h200" in report
    history = _without(tmp_path, "-m", "whisper_perf", "history", "--results-dir", str(MEASURED),
                             "--out", str(tmp_path / "history"))
    assert history.returncode == 0, history.stderr
    assert (tmp_path / "history" / "history-cuda-sm_90-nvidia-h200.png").is_file()


def test_a_bad_option_is_answered_before_torch_transformers_or_scipy_loads(tmp_path):
    """The options are checked in the plugin's pytest_configure, before the fixture modules (which
    import them) are registered: a mistyped option costs a second, not the imports' several."""
    heavy = ("torch", "transformers", "scipy")
    blocked = _without(tmp_path, "-c", "import scipy", blocked=heavy)
    assert blocked.returncode == 1 and "scipy is not installed here" in blocked.stderr
    for option, message in ((["--rounds", "0"], "--rounds must be at least 1, not 0"),
                            (["--results-dir", str(tmp_path / "sitecustomize.py" / "runs")], "cannot write there"),
                            (["--model", str(tmp_path / "absent")], "no such folder")):
        refused = _without(tmp_path, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", *option,
                                 blocked=heavy)
        assert refused.returncode == 4, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert message in refused.stderr + refused.stdout
