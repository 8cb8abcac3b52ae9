"""Stage 3, measure: timing ``generate()`` (``timing``, with the machine's load and speed beside it:
``contention``, ``machine_speed``), transcripts' WER (``accuracy``) and the diagnostic calls
(``diagnostics``: ``phases``, ``roofline``, ``kernel_profile``).  Measuring never imports judging:
--detect's stopping rule is handed to it (judge.adaptive)."""
