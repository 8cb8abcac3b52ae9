# The suite's plugin (options, header, parametrization) and the fixture modules in fixtures/.
pytest_plugins = ["whisper_perf.plugin", "fixtures.speech", "fixtures.models", "fixtures.variants",
                  "fixtures.measurements"]
