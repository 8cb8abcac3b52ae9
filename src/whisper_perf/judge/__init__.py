"""Stage 4, judge: statistics (``stats``, ``sequential``, ``device_time``), the numbers of one
measurement (``summary``), baselines and their rules (``baselines``), the verdicts (``verdicts``), the
adaptive stopping rule (``adaptive``) and steps across runs (``changepoints``).  Torch-free."""
