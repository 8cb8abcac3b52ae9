"""Stage 2, build: the eager and compiled variants of a model (``variant_specs`` as data,
``variants`` built), the prebuilt static cache, the injected slowdowns (``sensitivity``), what torch
did while compiling (``compile_health``), and builds in fresh processes (``coldstart``, ``isolation``)."""
