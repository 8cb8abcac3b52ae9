"""How the suite's processes end: without the interpreter's last garbage collections.

A process that has imported torch, transformers and sympy and compiled a model holds millions of
Python objects.  At exit the interpreter walks all of them in full collections, only to free
memory that the operating system takes back anyway: about 2 s per process on a 2-core CPU, after
every result is written.  Freezing the heap at exit (``gc.freeze``) leaves them out of those
collections; everything else about the exit is unchanged (atexit handlers, flushed files,
objects freed as their last reference goes).
"""

import atexit
import gc

_registered = False


def skip_final_collections() -> None:
    """At this process's exit, freeze the heap before the interpreter's final collections.
    Registered once; it acts only at exit, so a long-lived process keeps collecting as before."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
