# Before the plugins below import torch and transformers: every missing or too-old requirement
# named in one message, exit 6 (EXIT_ENVIRONMENT), instead of an ImportError traceback.
try:
    from whisper_perf.requirements import exit_if_unmet
except ModuleNotFoundError as exc:
    if exc.name != "whisper_perf":
        raise
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.stderr.write(f"whisper-perf itself is not importable by {sys.executable}. Fix: {sys.executable} -m pip "
                     f"install --no-deps -e {here}, or run with PYTHONPATH={here / 'src'}\n")
    raise SystemExit(6) from None  # EXIT_ENVIRONMENT (whisper_perf.errors cannot be imported either)
exit_if_unmet()

import pytest  # noqa: E402 (after the requirements check)

# The suite's plugin: options, header, parametrization.  It checks the options in its
# pytest_configure before anything imports torch, transformers or scipy, so that a bad option is
# answered in about a second; the fixture modules in fixtures/, which import them, come after.
pytest_plugins = ["whisper_perf.plugin"]
FIXTURES = ["fixtures.run", "fixtures.speech", "fixtures.models", "fixtures.variants", "fixtures.measurements"]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for name in FIXTURES:
        config.pluginmanager.import_plugin(name)
