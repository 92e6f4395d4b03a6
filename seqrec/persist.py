"""Atomic, pickle-free persistence helpers.

A model directory holds ``config.json`` (model name, config, metadata), ``items.json``
(the ItemIndex's external ids in dense-id order) and ``weights.safetensors``; a model
that scores known users (``uses_users``) adds ``users.json`` (its user index, the same
format as ``items.json``). It is
written into a temporary sibling directory and renamed into place, so a crash never
leaves a half-written model behind. An existing directory is replaced only when it holds
nothing but files seqrec writes (:func:`check_replaceable`): a user's files are never
deleted, and a regular file is never replaced by a directory. Written files and
directories get the modes the umask gives (0644/0755 with the usual umask 022).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from seqrec.errors import ModelFileError, OutputError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


MODEL_FILES = frozenset({"config.json", "items.json", "weights.safetensors"})
USERS_FILE = "users.json"  # the user index of a model that scores known users
MODEL_FORMAT = "seqrec-model"
# A hybrid's model directory also holds its parts, each a model directory of its own.
MAX_PARTS = 16
PART_DIRS = tuple(f"part-{i}" for i in range(MAX_PARTS))
# what a model directory may hold
MODEL_ENTRIES = MODEL_FILES | {USERS_FILE} | frozenset(PART_DIRS)


def model_dir_files(path: Path) -> list[Path]:
    """Every file of model directory ``path``, its parts' files included, in a fixed
    order (what a fingerprint of the model reads)."""
    return sorted(f for f in path.rglob("*") if f.is_file())


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no read-only query elsewhere: set and restore at once
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` (and everything under it) the modes a plain ``mkdir``/``open``
    would have: 0o777 / 0o666 less the umask (``mkdtemp``/``mkstemp`` make them 0700/0600,
    which other service accounts cannot read)."""
    mask = current_umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), dir_mode)
            for f in files:
                os.chmod(os.path.join(root, f), file_mode)
        os.chmod(path, dir_mode)
    else:
        os.chmod(path, file_mode)


def is_model_dir(path: Path) -> bool:
    """True when ``path/config.json`` is a seqrec model file (any version)."""
    try:
        info = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == MODEL_FORMAT


def _normalise(path: str | Path) -> Path:
    target = Path(os.path.abspath(path))
    if target.name in ("", ".", ".."):
        raise OutputError(f"{path}: not a usable output directory name")
    return target


def check_replaceable(
    path: str | Path,
    names: Collection[str] | None,
    accept: Callable[[Path], bool] | None = None,
    what: str = "directory",
) -> None:
    """OutputError unless ``path`` may be replaced by a new ``what``: it is absent, an
    empty directory, or a directory holding only entries named in ``names`` for which
    ``accept`` (when given) is true. Nothing else is ever replaced: a regular file, a
    symbolic link, or a directory holding anything seqrec does not write. ``names=None``
    checks only that ``path`` is not a file or a link (what is written decides later)."""
    target = _normalise(path)
    if target.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; refusing to replace it with a {what}")
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; refusing to replace it")
    if names is None:
        return
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        raise OutputError(f"{path}: cannot list the existing directory ({exc.strerror})") from None
    if not entries:
        return
    foreign = [e for e in entries if e not in names]
    if foreign:
        raise OutputError(
            f"{path}: directory is not empty and holds {foreign[0]!r}, which seqrec did not "
            f"write; refusing to replace it with a {what} (choose a new or empty directory)"
        )
    if accept is not None and not accept(target):
        raise OutputError(
            f"{path}: directory is not a seqrec {what}; refusing to replace it "
            "(choose a new or empty directory)"
        )


def check_writable(path: str | Path) -> None:
    """OutputError unless a directory can be created at ``path`` (probed by creating
    and removing a hidden directory in its nearest existing parent)."""
    target = _normalise(path)
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot write here ({parent} is not a directory)")
    try:
        probe = tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    os.rmdir(probe)


def check_output_dir(
    path: str | Path,
    names: Collection[str],
    accept: Callable[[Path], bool] | None = None,
    what: str = "directory",
) -> None:
    """Everything :func:`atomic_dir` will check, up front: run it before a long job."""
    check_replaceable(path, names, accept, what)
    check_writable(path)


def check_model_out(path: str | Path) -> None:
    """Up-front check of a model directory to be written (see ``Recommender.save``)."""
    check_output_dir(path, MODEL_ENTRIES, is_model_dir, "model directory")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the block runs; they take effect right after it.

    Python runs signal handlers in the main thread only, so only there can one
    interrupt the block: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:  # None: set outside Python, cannot be restored
            previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


@contextlib.contextmanager
def atomic_dir(
    path: str | Path,
    *,
    names: Collection[str] | None = None,
    accept: Callable[[Path], bool] | None = None,
    what: str = "directory",
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` atomically on success.

    An existing ``path`` is replaced only when it is an empty directory or holds nothing
    but entries named in ``names`` or written into the new directory (and ``accept``,
    when given, approves it): see :func:`check_replaceable`. It is checked before
    anything is written and again just before the rename. The new directory and its
    files get the modes the umask gives.
    """
    target = _normalise(path)
    check_replaceable(target, names, accept, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with _signals_deferred():  # an interrupt lands after ``tmp`` is known
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        yield tmp
        written = set(os.listdir(tmp))
        check_replaceable(target, set(names or ()) | written, accept, what)
        for f in tmp.rglob("*"):  # a hybrid's parts are sub-directories
            if f.is_file():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        apply_umask(tmp)
        with _signals_deferred():  # Ctrl-C / SIGTERM never lands between the renames
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.old-{os.getpid()}"
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(target.parent)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        apply_umask(Path(tmp))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing (not a seqrec model directory?)") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: corrupt JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: corrupt JSON ({exc})") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise ModelFileError(f"{path}: missing weights file")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelFileError(f"{path}: corrupt weights file ({exc})") from None
