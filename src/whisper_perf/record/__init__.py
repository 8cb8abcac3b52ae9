"""Stage 5, record: the results file of a run (``results``), its report and charts (``report``,
``charts``) and the bug-report folders to file upstream (``bug_report``).  Torch-free: reading a
results file needs no torch."""
