"""seqrec.sysmem: the malloc setting that keeps a training step's big blocks in the heap."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from seqrec.training import sysmem

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# malloc, fill and free blocks of 1, 4, 8 and 16 MiB (ten times each after a first
# round) and print the minor page faults of the repeats: glibc's default serves such
# blocks with fresh mmap pages or trims them, so repeats fault; kept in the heap, never.
PROBE = """
import ctypes, resource
from seqrec.training import sysmem
print(sysmem.keep_freed_memory())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = 0
for mb in (1, 4, 8, 16):
    n = mb << 20
    p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)
    faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
print(faults)
"""


def _probe(env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults():

    env = {k: v for k, v in os.environ.items() if k not in ("SEQREC_MALLOPT", "GLIBC_TUNABLES")}
    applied, faults = _probe(env)
    assert applied == "True"
    assert faults < 50  # 0 measured; glibc's default: ~4,000 (1,000 for the 16 MiB block)
    off, faults_off = _probe({**env, "SEQREC_MALLOPT": "0"})
    assert off == "False"
    assert faults_off > faults


def test_switch_off_and_applied_once(monkeypatch):
    monkeypatch.setattr(sysmem, "_applied", None)
    monkeypatch.setenv("SEQREC_MALLOPT", "0")
    assert sysmem.keep_freed_memory() is False
    monkeypatch.setenv("SEQREC_MALLOPT", "1")
    assert sysmem.keep_freed_memory() is False  # decided once per process
    monkeypatch.setattr(sysmem, "_applied", None)
    assert sysmem.keep_freed_memory() is GLIBC
    assert sysmem.keep_freed_memory() is GLIBC
