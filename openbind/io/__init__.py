"""Decoding of user files: no model code.

Importing this package makes every forked child process (DataLoader workers) leave the objects it inherits out
of its garbage collection (`gc.freeze`). A PyAV decoder alive in the parent owns FFmpeg threads that do not
exist in a forked child; if the child's collector frees such a decoder (an uncollected reference cycle, as an
exception's traceback leaves one), FFmpeg waits forever for those threads and the worker hangs. Frozen objects
are never collected in the child (what `gc.freeze` is for; it also spares copy-on-write of the parent's pages);
the parent is unaffected.
"""

import gc
import os

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=gc.freeze)
