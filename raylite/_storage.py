"""Where results go, and what a storage path or URI means: one place for Tune, Train, RLlib
and Data.

``results_dir()`` is the default experiment root: ``$RAYLITE_RESULTS_DIR`` if set, else
``~/ray_results`` (where the book, and Ray, put checkpoints and TensorBoard logs).
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_RESULTS_DIR = "~/ray_results"

__all__ = ["DEFAULT_RESULTS_DIR", "results_dir", "resolve", "is_remote", "local_path",
           "memory_filesystem", "memory_path",
           "check_writable_root", "upload_dir", "upload_dir_or_clean",
           "download_dir", "to_uri"]


def results_dir(path: str | os.PathLike | None = None) -> str:
    """``path`` (a ``file://`` URI or a local path, ``~`` expanded), else $RAYLITE_RESULTS_DIR,
    else ``~/ray_results``: an absolute local path."""
    root = os.fspath(path) if path else None
    root = root or os.environ.get("RAYLITE_RESULTS_DIR") or DEFAULT_RESULTS_DIR
    return os.path.abspath(os.path.expanduser(str(root).removeprefix("file://")))


# ==========================================================================================
# URIs and filesystems (pyarrow.fs; fsspec filesystems through pyarrow's FSSpecHandler)
# ==========================================================================================
_LOCAL_SCHEMES = ("file://", "local://")


def is_remote(path: Any, filesystem: Any = None) -> bool:
    """Whether ``path`` (with ``filesystem``) needs a filesystem object rather than os calls."""
    text = str(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else ""
    return filesystem is not None or ("://" in text and not text.startswith(_LOCAL_SCHEMES))


def local_path(path: Any) -> str:
    """A local path, or a ``file://`` / ``local://`` URI, as an absolute local path."""
    text = str(os.fspath(path))
    for scheme in _LOCAL_SCHEMES:
        text = text.removeprefix(scheme)
    return os.path.abspath(os.path.expanduser(text))


def resolve(path: Any, filesystem: Any = None) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path on it)`` for a URI (``s3://bucket/key``,
    ``s3://anonymous@bucket/key``, ``gs://...``, ``file://...``, ``memory://...``: see
    :func:`memory_filesystem`) or a path on ``filesystem``
    (a ``pyarrow.fs.FileSystem`` or an fsspec filesystem). S3 credentials and endpoint come from
    the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``...),
    as pyarrow reads them."""
    import pyarrow.fs as pafs
    text = str(os.fspath(path))
    if filesystem is not None:
        return _as_arrow_filesystem(filesystem), _strip_scheme(text)
    if "://" not in text or text.startswith(_LOCAL_SCHEMES):
        return pafs.LocalFileSystem(), local_path(text)
    if text.startswith("memory://"):
        return memory_filesystem(text), memory_path(text)
    try:
        return pafs.FileSystem.from_uri(_with_gcs_retry_limit(text))
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{text!r}: cannot open this URI ({exc}); raylite reads s3://, gs://, "
                         "hdfs://, file:// and memory:// URIs, or any path with "
                         "filesystem=") from None


# memory://: a folder of the running session in /dev/shm, the same for all its processes
# (fsspec's memory filesystem lives inside one process, and raylite reads and writes in its
# worker processes). It goes with the session's shared-memory folder, at shutdown.
def memory_filesystem(uri: str = "memory://") -> Any:
    """The running session's ``memory://`` filesystem: a ``pyarrow.fs.SubTreeFileSystem`` over
    its folder. ValueError when no session runs, or on a Dask cluster (other machines)."""
    import pyarrow.fs as pafs

    from raylite.core import _api
    backend = _api._backend_obj
    if backend is None:
        raise ValueError(f"{uri!r}: memory:// URIs are files of the running raylite session, "
                         "and none is running; call raylite.init() first (they last until "
                         "shutdown())")
    try:
        root = backend.memory_folder()
    except ValueError as exc:
        raise ValueError(f"{uri!r}: {exc}") from None
    return pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())


def memory_path(uri: str) -> str:
    """The path on the memory filesystem: ``memory://a/b`` and ``memory:///a/b`` are ``a/b``."""
    path = uri.removeprefix("memory://").strip("/")
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{uri!r}: '.' and '..' are not allowed in a memory:// URI; name the "
                         "path from its root, as memory://folder/file")
    return path


def _is_memory_filesystem(filesystem: Any) -> bool:
    """Whether ``filesystem`` is the running session's memory:// one."""
    import pyarrow.fs as pafs

    from raylite.core import _api
    backend = _api._backend_obj
    if backend is None or not isinstance(filesystem, pafs.SubTreeFileSystem):
        return False
    try:
        root = backend.memory_folder()
    except ValueError:
        return False
    return filesystem.base_path.rstrip("/") == root.rstrip("/")


#: how long a gs:// call retries (pyarrow's default is 15 minutes: without credentials,
#: a read would seem to hang); a URI's own ``?retry_limit_seconds=`` wins
GCS_RETRY_LIMIT_S = 20


def _gcs_options(filesystem: Any) -> dict:
    """A GcsFileSystem's options (what it pickles as)."""
    try:
        return dict(filesystem.__reduce__()[1][0])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return {}


def _with_gcs_retry_limit(uri: str) -> str:
    if not uri.startswith(("gs://", "gcs://")) or "retry_limit_seconds=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}retry_limit_seconds={GCS_RETRY_LIMIT_S}"


def _strip_scheme(text: str) -> str:
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    return local_path(text) if scheme in ("file", "local") else rest.split("@", 1)[-1]


def _as_arrow_filesystem(filesystem: Any) -> Any:
    import pyarrow.fs as pafs
    if isinstance(filesystem, pafs.FileSystem):
        return filesystem
    try:
        import fsspec
    except ImportError:
        fsspec = None
    if fsspec is not None and isinstance(filesystem, fsspec.AbstractFileSystem):
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
    raise TypeError(f"filesystem= takes a pyarrow.fs.FileSystem or an fsspec filesystem, got "
                    f"{type(filesystem).__name__}")


def check_writable_root(filesystem: Any, path: str, what: str) -> None:
    """Create the directory ``path`` (S3: check that its bucket exists) or raise a one-line
    error saying what is missing."""
    import pyarrow.fs as pafs
    if type(filesystem).__name__ in ("S3FileSystem", "GcsFileSystem"):  # never make buckets
        bucket = path.split("/", 1)[0]
        try:
            info = filesystem.get_file_info(bucket)
        except OSError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PermissionError(f"{what}: cannot reach the bucket {bucket!r} ({reason}); "
                                  "check the credentials and the endpoint") from None
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{what}: the bucket {bucket!r} does not exist (or these "
                                    "credentials cannot see it); create it first")
        return
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        raise FileExistsError(f"{what}: a file is in the way at {path!r}; the path must be a "
                              "directory (it is created if missing)")
    try:
        filesystem.create_dir(path, recursive=True)
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PermissionError(f"{what}: cannot create {path!r} ({reason}); give these "
                              "credentials write access there, or choose another path") from None


def upload_dir(local_dir: str, filesystem: Any, path: str) -> None:
    """Copy the local directory ``local_dir`` (all files below it) to ``path`` on
    ``filesystem``, replacing files of the same names."""
    import pyarrow.fs as pafs
    pafs.copy_files(local_dir, path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)


def upload_dir_or_clean(local_dir: str, filesystem: Any, path: str, what: str) -> None:
    """:func:`upload_dir`, all or nothing: if a write fails, what this call wrote under ``path``
    is removed (when ``path`` did not exist before) and a one-line error names ``what``, the
    reason and the fix."""
    import pyarrow.fs as pafs
    try:
        existed = filesystem.get_file_info(path).type != pafs.FileType.NotFound
    except OSError:
        existed = False
    try:
        upload_dir(local_dir, filesystem, path)
    except OSError as exc:
        if not existed:
            try:
                filesystem.delete_dir(path)
            except OSError:
                pass
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PermissionError(f"{what}: cannot write to {path!r} ({reason}); give these "
                              "credentials write access there, or choose another storage "
                              "path") from None


def download_dir(filesystem: Any, path: str, local_dir: str, what: str) -> str:
    """Copy the directory ``path`` on ``filesystem`` to ``local_dir``; a one-line
    FileNotFoundError naming ``what`` if it is not there."""
    import pyarrow.fs as pafs
    try:
        info = filesystem.get_file_info(path)
    except OSError as exc:
        raise FileNotFoundError(f"{what}: cannot read {path!r} ({exc})") from None
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{what}: nothing at {path!r} (no such directory, or its "
                                "bucket does not exist); check the URI")
    os.makedirs(local_dir, exist_ok=True)
    pafs.copy_files(path, local_dir, source_filesystem=filesystem,
                    destination_filesystem=pafs.LocalFileSystem())
    return local_dir


def to_uri(filesystem: Any, path: str) -> str:
    """A URI for ``path`` on ``filesystem`` (``s3://bucket/key``; a local path as is)."""
    import pyarrow.fs as pafs
    if isinstance(filesystem, pafs.LocalFileSystem):
        return path
    if _is_memory_filesystem(filesystem):
        return f"memory://{path}"
    scheme = {"S3FileSystem": "s3", "GcsFileSystem": "gs",
              "HadoopFileSystem": "hdfs"}.get(type(filesystem).__name__)
    if scheme == "gs" and _gcs_options(filesystem).get("anonymous"):
        return f"gs://anonymous@{path}"  # read back the same way, without credentials
    return f"{scheme}://{path}" if scheme else path
