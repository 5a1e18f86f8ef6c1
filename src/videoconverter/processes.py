"""Child processes that do not outlive their parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def parent_death_signal(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that makes the kernel send ``signum`` to the child when its parent (the process
    calling this) dies, even by SIGKILL; None elsewhere. Children started in their own session would otherwise
    outlive it. A parent that died between the fork and the hook sends nothing: the hook sends it itself."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:  # runs in the child between fork and exec: system calls only
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return hook
