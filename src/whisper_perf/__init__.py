"""whisper_perf: a performance regression suite for Whisper under torch.compile.

Data flow, one module each: hardware (which machine) -> models (load Whisper) -> audio (the
utterances) -> variants (eager / compiled builds) -> timing (measure generate()) -> stats,
baselines, verdicts (judge) -> report (tell).
"""

__version__ = "0.1.0"
