"""The one :class:`Checkpoint` of raylite: Train, Tune, AIR and the predictors share it.

A checkpoint is either a directory on disk or a dict in memory, and turns into the other on
demand::

    Checkpoint.from_dict({...}) ──to_directory()──► dir/dict_checkpoint.pkl
    Checkpoint.from_directory(dir) ──to_dict()────► the dict (a dict checkpoint's), else an error
    to_bytes() / from_bytes()                       the dict, pickled (Ray 2.2)

A framework checkpoint (``TorchCheckpoint``, ``XGBoostCheckpoint`` ...) is a subclass; written
to a directory it leaves its class name in ``.raylite_checkpoint.json``, so that
``Checkpoint.from_directory`` of that directory (say, ``result.checkpoint``) gives the subclass
back. A fitted preprocessor travels inside: the dict key ``"_preprocessor"`` or the file
``preprocessor.pkl`` (Ray 2.2's two places); :meth:`Checkpoint.get_preprocessor` reads either.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import cloudpickle

from raylite.util._pickle_file import load_pickle

DICT_FILE = "dict_checkpoint.pkl"
TYPE_FILE = ".raylite_checkpoint.json"
PREPROCESSOR_FILE = "preprocessor.pkl"
PREPROCESSOR_KEY = "_preprocessor"


class Checkpoint:
    """Saved state: a directory on disk, or a dict in memory.

    Ray 2.2's ``Checkpoint(local_path=..., data_dict=..., uri=...)`` and today's
    ``Checkpoint(path)`` both construct one; the class methods are the usual way.

    Example:
        >>> ckpt = Checkpoint.from_dict({"epoch": 3})
        >>> ckpt.to_dict()["epoch"]
        3
        >>> Checkpoint.from_directory(ckpt.to_directory()).to_dict()
        {'epoch': 3}
        >>> Checkpoint.from_bytes(ckpt.to_bytes()).to_dict()
        {'epoch': 3}
    """

    _DICT_FILE = DICT_FILE  # the name raylite.tune's class trainables write

    def __init__(self, path: str | os.PathLike | None = None, data: dict | None = None, *,
                 local_path: str | os.PathLike | None = None, data_dict: dict | None = None,
                 uri: str | None = None, filesystem: Any = None):
        path = path if path is not None else local_path
        data = data if data is not None else data_dict
        if uri is not None:
            if path is not None or data is not None:
                raise ValueError("a Checkpoint takes one of path, data or uri, not several")
            if _is_remote_uri(uri):
                copy = self.from_uri(uri)
                path, self._remote_uri = copy.path, uri
            else:
                path = _local_path_of_uri(uri)
        if (path is None) == (data is None):
            raise ValueError("a Checkpoint is either a directory (path=...) or a dict (data=...); "
                             "build one with Checkpoint.from_directory or Checkpoint.from_dict")
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"a Checkpoint's data must be a dict, got {type(data).__name__}")
        self.path = os.fspath(path) if path is not None else None
        self._data = data
        self._filesystem = filesystem
        if not hasattr(self, "_remote_uri"):
            self._remote_uri: str | None = None  # where it came from / was uploaded to

    # ---- making one ------------------------------------------------------------------------
    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> Checkpoint:
        """A checkpoint of the files in ``path`` (read when used, not now); the framework class
        that wrote the directory, if it is a subclass of ``cls``."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory: {path!r} is not a directory")
        return _saved_type(path, cls)(path=path)

    @classmethod
    def from_dict(cls, data: dict) -> Checkpoint:
        """A checkpoint holding ``data`` in memory."""
        if not isinstance(data, dict):
            raise TypeError(f"Checkpoint.from_dict takes a dict, got {type(data).__name__}")
        return cls(data=dict(data))

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """The checkpoint :meth:`to_bytes` made."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"Checkpoint.from_bytes takes bytes, got {type(data).__name__}")
        return cls.from_dict(pickle.loads(data))

    @classmethod
    def from_uri(cls, uri: str) -> Checkpoint:
        """The checkpoint at ``uri``: a ``file://`` URI or a path, or a remote one
        (``s3://bucket/key``, ``gs://...``, read through pyarrow.fs), downloaded now into a
        local temporary directory (its ``path``; ``uri`` stays the remote one)."""
        if not _is_remote_uri(uri):
            return cls.from_directory(_local_path_of_uri(uri))
        from raylite._storage import download_dir, resolve
        filesystem, remote = resolve(uri)
        local = download_dir(filesystem, remote, tempfile.mkdtemp(prefix="checkpoint_"),
                             f"Checkpoint.from_uri({uri!r})")
        checkpoint = cls.from_directory(local)
        checkpoint._remote_uri, checkpoint._filesystem = uri, filesystem
        return checkpoint

    @classmethod
    def from_checkpoint(cls, other: Checkpoint) -> Checkpoint:
        """The same saved state seen as ``cls`` (e.g. ``TorchCheckpoint.from_checkpoint(ckpt)``)."""
        if not isinstance(other, Checkpoint):
            raise TypeError(f"from_checkpoint takes a Checkpoint, got {type(other).__name__}")
        if isinstance(other, cls):
            return other
        same = cls(path=other.path) if other.path is not None else cls(data=dict(other._data))
        same._remote_uri, same._filesystem = other._remote_uri, other._filesystem
        return same

    # ---- reading it ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The dict this checkpoint holds (one made by ``from_dict`` or ``report``)."""
        if self._data is not None:
            return dict(self._data)
        file = os.path.join(self.path, DICT_FILE)
        if not os.path.exists(file):
            raise ValueError(f"checkpoint {self.path} holds files, not a dict; read them with "
                             "to_directory() or as_directory()")
        return load_pickle(file, "checkpoint")

    def to_bytes(self) -> bytes:
        """The dict, pickled (a directory checkpoint must hold a dict)."""
        return cloudpickle.dumps(self.to_dict())

    def to_directory(self, path: str | os.PathLike | None = None) -> str:
        """Write the checkpoint into ``path`` (a new temporary directory if None); return it."""
        path = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(path, exist_ok=True)
        if self._data is not None:
            with open(os.path.join(path, DICT_FILE), "wb") as f:
                cloudpickle.dump(self._data, f)
        elif os.path.abspath(self.path) != os.path.abspath(path):
            shutil.copytree(self.path, path, dirs_exist_ok=True)
        if type(self) is not Checkpoint:
            with open(os.path.join(path, TYPE_FILE), "w") as f:
                json.dump({"type": f"{type(self).__module__}:{type(self).__qualname__}"}, f)
        return path

    def to_uri(self, uri: str) -> str:
        """Write the checkpoint to ``uri`` (``file://``, a path, or ``s3://bucket/key`` ...
        through pyarrow.fs); return the URI. A failed upload leaves nothing behind."""
        if not _is_remote_uri(uri):
            self.to_directory(_local_path_of_uri(uri))
            return uri
        from raylite._storage import check_writable_root, resolve, upload_dir_or_clean
        filesystem, remote = resolve(uri)
        what = f"Checkpoint.to_uri({uri!r})"
        check_writable_root(filesystem, remote, what)
        local = self.to_directory()
        try:
            upload_dir_or_clean(local, filesystem, remote, what)
        finally:
            shutil.rmtree(local, ignore_errors=True)
        return uri

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint as a directory for the ``with`` block (a temporary copy only for a
        dict checkpoint; do not write into it)."""
        if self.path is not None:
            yield self.path
            return
        path = self.to_directory()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @property
    def uri(self) -> str | None:
        """Where the checkpoint lives: its remote URI (``s3://...``) if it came from or was
        stored there, else ``file://<path>``."""
        if self._remote_uri is not None:
            return self._remote_uri
        return f"file://{os.path.abspath(self.path)}" if self.path else None

    @property
    def filesystem(self) -> Any:
        """The pyarrow file system of :attr:`uri` (the local one for a local checkpoint)."""
        if self._filesystem is None and self._remote_uri is not None:
            from raylite._storage import resolve
            self._filesystem = resolve(self._remote_uri)[0]
        if self._filesystem is None:
            import pyarrow.fs
            self._filesystem = pyarrow.fs.LocalFileSystem()
        return self._filesystem

    def get_internal_representation(self) -> tuple[str, Any]:
        return ("data_dict", dict(self._data)) if self._data is not None \
            else ("local_path", self.path)

    # ---- the preprocessor inside ------------------------------------------------------------
    def get_preprocessor(self) -> Any:
        """The fitted preprocessor saved with this checkpoint, or None."""
        if self._data is not None:
            return self._data.get(PREPROCESSOR_KEY)
        file = os.path.join(self.path, PREPROCESSOR_FILE)
        if os.path.exists(file):
            return load_pickle(file, "checkpoint's preprocessor")
        dict_file = os.path.join(self.path, DICT_FILE)
        if os.path.exists(dict_file):
            return self.to_dict().get(PREPROCESSOR_KEY)
        return None

    def set_preprocessor(self, preprocessor: Any) -> None:
        """Save ``preprocessor`` with this checkpoint (in place)."""
        if self._data is not None:
            self._data[PREPROCESSOR_KEY] = preprocessor
            return
        with open(os.path.join(self.path, PREPROCESSOR_FILE), "wb") as f:
            cloudpickle.dump(preprocessor, f)

    # ---- pickling and printing ------------------------------------------------------------
    def __getstate__(self) -> dict:
        """A directory checkpoint travels as its files: the receiver may be on another machine."""
        if self.path is not None and os.path.isdir(self.path):
            from raylite.train._checkpoint import to_payload
            return {"payload": to_payload(self), "uri": self._remote_uri}
        return {"data": self._data, "uri": self._remote_uri}

    def __setstate__(self, state: dict) -> None:
        self._filesystem = None
        self._remote_uri = state.get("uri")
        if "data" in state:
            self.path, self._data = None, state["data"]
            return
        from raylite.train._checkpoint import write_payload
        kind, content = state["payload"]
        if kind == "dict":
            self.path, self._data = None, content
        else:
            self.path = write_payload(state["payload"], tempfile.mkdtemp(prefix="checkpoint_"))
            self._data = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Checkpoint):
            return NotImplemented
        return (self.path, self._data) == (other.path, other._data)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._remote_uri is not None:
            return f"{name}(uri={self._remote_uri!r}, local copy {self.path!r})"
        return f"{name}(path={self.path!r})" if self.path else f"{name}(<dict>)"


def _saved_type(path: str, base: type) -> type:
    """The Checkpoint subclass recorded in ``path`` if it is a subclass of ``base``, else base."""
    file = os.path.join(path, TYPE_FILE)
    if not os.path.exists(file):
        return base
    try:
        with open(file) as f:
            module_name, _, qualname = json.load(f)["type"].partition(":")
        saved = importlib.import_module(module_name)
        for part in qualname.split("."):
            saved = getattr(saved, part)
    except (OSError, ValueError, KeyError, ImportError, AttributeError):
        return base
    return saved if isinstance(saved, type) and issubclass(saved, base) else base


def _is_remote_uri(uri: Any) -> bool:
    if not isinstance(uri, str):
        raise TypeError(f"a checkpoint URI must be a str, got {type(uri).__name__}")
    from raylite._storage import is_remote
    return is_remote(uri)


def _local_path_of_uri(uri: str) -> str:
    if not isinstance(uri, str):
        raise TypeError(f"a checkpoint URI must be a str, got {type(uri).__name__}")
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return uri.removeprefix("local://")
