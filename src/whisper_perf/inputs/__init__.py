"""Stage 1, inputs: which machine (``hardware``), which model (``models``, ``convert``,
``architectures``), which audio (``audio``) and how to generate (``generation``)."""
