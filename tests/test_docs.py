"""The README is the door and the docs site holds the rest: the site builds with no broken link,
its options page is the plugin's own help, and the README stays short and cites committed files."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 20_000  # bytes: what it is, the two commands, the output, each user's task; the rest is docs/


def test_the_docs_site_builds_with_no_broken_link_or_missing_page(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    options = (tmp_path / "site" / "options" / "index.html").read_text()
    from whisper_perf import plugin  # every option the plugin declares is on the page, with its help

    source = Path(plugin.__file__).read_text()
    declared = re.findall(r'addoption\("(--[a-z-]+)"', source)
    assert len(declared) > 15
    missing = [name for name in declared if f"<code>{name}" not in options]
    assert not missing, missing
    assert "what to run by default: quick = the compiled variants" in options


def test_the_readme_is_short_and_every_file_it_names_is_committed():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= README_LIMIT, f"README.md is {len(text.encode())} bytes; move detail to docs/"
    assert "nox -s perf" in text and "nox -s tests" in text  # the two commands
    named = set(re.findall(r"`((?:docs|baselines)/[\w./+-]+\.(?:md|json))`", text))
    assert named, "the README cites no file"
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    assert not [n for n in named if n not in tracked], named  # committed, so a fresh clone has them
