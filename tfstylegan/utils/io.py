"""Atomic outputs: nothing is ever half-written.

Every file or folder the toolkit produces is first written under a temporary name in
the same directory and renamed into place only once complete, so a crash or a kill
leaves either the previous version or nothing, never a truncated file.

Temporary names are hidden and say who made them: `.<name>.<host>-<pid>.<random>.tmp`
(`.old` for a folder being replaced). A kill leaves one behind; `remove_stale_temporaries`
(run by `atomic_dir` on the folder it writes into, and by launchers on their output folders)
deletes those whose process no longer runs on this host.

Permissions: `mkstemp`/`mkdtemp` create 0600/0700 entries; before the rename they get the
mode a plain `open()`/`mkdir()` would give under the process umask (0644/0755 under umask
022), so a TF Serving container or a colleague can read what was written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np

_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?:tmp|old)$")


def _owner_tag() -> str:
    """'<host>-<pid>' of this process, as written into temporary names."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def _tmp_name(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (no race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path) -> None:
    """Gives a temporary file (0600) or folder (0700) the mode `open()`/`mkdir()` would under the umask."""
    base = 0o777 if path.is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Deletes temporaries in `folder` left by killed processes of this host; returns what was removed.

    Only entries named by `_tmp_name`/`atomic_dir` (`.<name>.<host>-<pid>.<random>.tmp|.old`) whose
    host is this one and whose pid no longer runs are touched; `name` limits it to one target's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = _owner_tag().rsplit("-", 1)[0]
    removed = []
    for entry in folder.iterdir():
        m = _TMP_RE.match(entry.name)
        if m is None or m["host"] != host or (name is not None and m["name"] != name):
            continue
        if _process_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary file path next to `path`; renames it to `path` on success.

    Use for writers that want a filename (PIL `save`, `np.savez`, h5py, ...).
    On an exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if tmp.exists():
            _publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[Any]:
    """`open()` that writes to a temporary file and renames it into place when closed cleanly."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary folder next to `path`; renames it to `path` when the block succeeds.

    If `path` exists and `overwrite` is False a `FileExistsError` is raised before
    anything is written. With `overwrite=True` the old folder is replaced only after
    the new one is complete.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Output folder {path} already exists. Choose another --out or delete it first."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)  # what a killed earlier run left
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:  # `path` was a file or a link: rmtree would leave it behind as `.name.*.old`
                old.unlink(missing_ok=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON, atomically. NaN/inf are refused (not valid JSON)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
        f.write("\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
