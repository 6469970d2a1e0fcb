"""The C library's allocator: glibc's `malloc_trim`, which gives the free memory of its
heaps back to the system.

After a wave of connections (300 event streams, an overload test's 400 clients) has ended,
the memory it used is free but still counted against the process: glibc keeps freed chunks
for the next allocation and returns the top of a heap only past a threshold. Python's own
allocator gives a 1 MiB arena back once every object in it is freed, but everything larger
than 512 bytes (a dict's table, a socket's buffers, a response's bytes) comes from malloc.
`malloc_trim(0)` releases every free page of every heap and says whether it released any
(measured after 300 streams nobody read: ≈ 3 MiB of the ≈ 13 MiB the wave added;
`server/memory_release.py` decides when).

`malloc_trim` is a glibc extension, not POSIX: `release_free_memory()` does nothing where
the C library has none (musl, macOS) and says so by returning False. The symbol is looked
up in the running process (`dlopen(NULL)`, the C library already loaded), guarded by
tests/compat/test_compat.py, which fails on a glibc system where it cannot be found.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc (Windows: no dlopen(NULL))
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Gives the C allocator's free pages back to the system: True if it gave some. It
    takes as long as walking the heaps does — milliseconds, with the GIL released but the
    allocator's locks held: call it from a thread. False where the C library cannot."""
    return MALLOC_TRIM is not None and MALLOC_TRIM(0) == 1
