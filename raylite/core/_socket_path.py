"""Where a Unix socket can live: the kernel takes at most 107 bytes of path (``sun_path``).

A session folder in a long TMPDIR (pytest's ``tmp_path``, macOS's ``/var/folders/...``) leaves
no room for ``<session>/control.sock``. Then the socket goes into a private folder of its own
(mode 0700, made by ``mkdtemp``, so no other user can have prepared it) under the first short
root: ``$XDG_RUNTIME_DIR`` (per user), then ``/tmp``::

    socket_path(session_dir, "control.sock")
        short enough  -> <session_dir>/control.sock                 (nothing else to clean)
        too long      -> /tmp/raylite-sock-<pid>-XXXX/control.sock  (release() removes it;
                         folders of dead pids are removed by the next process making one)
"""

from __future__ import annotations

import os
import shutil
import tempfile

from raylite.core._stale import remove_folders_of_dead_processes

MAX_PATH_BYTES = 107
PREFIX = "raylite-sock-"


def socket_path(session_dir: str, name: str) -> str:
    """A path for socket ``name`` that fits ``sun_path``: in ``session_dir`` when it fits."""
    path = os.path.join(session_dir, name)
    if len(os.fsencode(path)) <= MAX_PATH_BYTES:
        return path
    for root in _short_roots():
        remove_stale(root)
        try:
            folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root)
        except OSError:
            continue
        path = os.path.join(folder, name)
        if len(os.fsencode(path)) <= MAX_PATH_BYTES:
            return path
        os.rmdir(folder)
    raise OSError(f"no folder short enough for a Unix socket (at most {MAX_PATH_BYTES} bytes): "
                  f"{session_dir!r} is too long and /tmp is not writable; set TMPDIR to a "
                  "shorter path")


def release(path: str) -> None:
    """Remove the socket at ``path``, and its folder if :func:`socket_path` made one for it."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    if os.path.basename(folder).startswith(PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(root: str) -> None:
    """Remove this user's socket folders under ``root`` whose process is gone."""
    remove_folders_of_dead_processes(
        root, PREFIX, lambda name: int(name[len(PREFIX):].split("-")[0]), own_only=True)


def _short_roots() -> list[str]:
    roots = [os.environ.get("XDG_RUNTIME_DIR") or "", "/tmp"]
    return [root for root in roots if root and os.path.isdir(root)]
