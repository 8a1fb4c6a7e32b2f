"""Folders named after the process that made them, and their removal once it is gone.

The session folders of dead drivers (``/dev/shm/raylite-<pid>-...``, ``$TMPDIR/raylite-session-
...-<pid>-...``) and the short socket folders of ``_socket_path`` are swept this way.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_folders_of_dead_processes(root: str, prefix: str, pid_of: Callable[[str], int],
                                     own_only: bool = False) -> None:
    """Remove each folder under ``root`` named ``prefix...`` whose process (``pid_of(name)``)
    is gone; ``own_only``: only this user's folders."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(root, name)
        try:
            pid = pid_of(name)
            if own_only and os.stat(path).st_uid != os.getuid():
                continue
        except (IndexError, ValueError, OSError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
