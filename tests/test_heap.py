"""The C heap of a long-running kiosk (kiosk/heap.py): glibc's malloc arenas capped, free
pages given back. Each case runs in a fresh Python, since arenas are per process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import heap

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="glibc only: malloc arenas and malloc_trim")

# Eight threads allocate at once, as the web server's workers do; glibc's malloc_info then
# lists one <heap> per arena in use.
PROBE = """
import ctypes, ctypes.util, re, sys, tempfile, threading
from kiosk import heap
print(heap.limit_arenas() if sys.argv[1] == "limit" else None)
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(2000):
        [bytearray(256) for _ in range(50)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as out:
    fp = ctypes.c_void_p(libc.fopen(out.name.encode(), b"w"))
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(len(re.findall("<heap nr=", out.read())))
"""


def arenas(mode: str, **env) -> tuple[str, int]:
    """(what limit_arenas answered, arenas in use after eight threads allocated at once)."""
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=environ, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    return out[0], int(out[1])


def test_eight_busy_threads_share_the_capped_arenas():
    answered, used = arenas("limit")
    assert answered == "True" and used <= heap.ARENAS
    # without the cap, glibc gives the threads arenas of their own
    assert arenas("none")[1] > heap.ARENAS


def test_the_operators_malloc_arena_max_wins():
    answered, used = arenas("limit", MALLOC_ARENA_MAX="3")
    assert answered == "False" and used <= 3


def test_free_pages_go_back_after_a_burst():
    burst = [bytearray(512) for _ in range(100_000)]     # 50 MB in small blocks, on the heap
    del burst
    assert heap.release_free_memory() is True
