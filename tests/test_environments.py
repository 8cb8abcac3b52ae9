"""The install-or-reuse rule of nox's sessions and of upgrade (whisper_perf.environments): what
pip is asked to do, the byte-compiling after it, and an import without torch (nox's own Python)."""

import subprocess
import sys
from pathlib import Path

from whisper_perf import environments

ROOT = Path(__file__).resolve().parents[1]


def test_environment_is_installed_once_and_extras_on_top(tmp_path):
    folder, ran = tmp_path / "env", []

    def run(step):
        ran.append(step)
        if "venv" in step:
            environments.python_in(folder).parent.mkdir(parents=True, exist_ok=True)
            environments.python_in(folder).touch()

    groups = ["torch==2.13.0", "transformers"]
    python = str(environments.python_in(folder))
    compile_all = environments.byte_compile(python)  # once, after pip: a worker per core
    pip = [python, "-m", "pip", "install", "--no-compile"]
    environments.prepare(folder, groups, ROOT, run, "python3.11")
    assert ran == [["python3.11", "-m", "venv", "--clear", str(folder)], [*pip, "torch==2.13.0"],
                   [*pip, "-e", str(ROOT), "transformers"], compile_all]
    ran.clear()
    assert environments.prepare(folder, groups, ROOT, run, "python3.11") == environments.python_in(folder)
    assert ran == []  # the marker says it holds them: no pip
    environments.prepare(folder, [*groups, "--no-deps openai-whisper==20250625"], ROOT, run, "python3.11")
    assert ran == [[*pip, "--no-deps", "openai-whisper==20250625"], compile_all]  # only the extra
    ran.clear()
    environments.prepare(folder, groups, ROOT, run, "python3.11")
    assert ran == []  # an environment holding more than asked is still reused
    environments.prepare(folder, ["torch==2.14.0", "transformers"], ROOT, run, "python3.11")
    assert ran == [[*pip, "torch==2.14.0"], [*pip, "-e", str(ROOT), "transformers"], compile_all]  # no new venv
    ran.clear()
    environments.prepare(folder, groups, ROOT, run, "python3.12")
    assert ran[0][1:3] == ["-m", "venv"]  # another interpreter: a new environment


def test_an_environment_is_byte_compiled_once_passing_over_a_file_that_does_not_compile(tmp_path):
    """As pip would: a module that does not compile on this Python is left as it is, without failing;
    a package's own test suite is left out (nothing imports it)."""
    folder = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = environments.python_in(folder)
    site = Path(environments._site_packages(python))
    (site / "good.py").write_text("VALUE = 1\n")
    (site / "bad.py").write_text("print 'python 2'\n")
    for folder_name in ("tests", "testing"):
        (site / "pkg" / folder_name).mkdir(parents=True)
        (site / "pkg" / folder_name / "module.py").write_text("VALUE = 2\n")
    environments.run_quietly(environments.byte_compile(python))  # raises where the command fails
    compiled = sorted(p.name.split(".")[0] for p in (site / "__pycache__").glob("*.pyc"))
    assert compiled == ["good"]
    assert not list((site / "pkg" / "tests").rglob("*.pyc")) and list((site / "pkg" / "testing").rglob("*.pyc"))


def test_environments_import_without_torch():
    """noxfile.py imports it under nox's own Python, which has no torch."""
    done = subprocess.run([sys.executable, "-c", "import sys; import whisper_perf.environments; "
                           "print(sorted({'torch', 'numpy', 'transformers'} & set(sys.modules)))"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
