"""``python -m whisper_perf <command>``: the same as the ``whisper-perf`` console script (cli.py)."""

import sys

from .cli import main

sys.exit(main())
