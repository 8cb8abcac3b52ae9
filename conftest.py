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

# The suite's plugin (options, header, parametrization) and the fixture modules in fixtures/.
pytest_plugins = ["whisper_perf.plugin", "fixtures.run", "fixtures.speech", "fixtures.models", "fixtures.variants",
                  "fixtures.measurements"]
