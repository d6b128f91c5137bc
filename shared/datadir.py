"""The data dir: private, writable, and used by one ``vigil up`` at a time.

Two supervisors on one data dir would run two nats-servers on one JetStream store,
and a store written by two servers loses acknowledged messages. So the supervisor
holds an exclusive ``flock`` on ``vigil.lock`` for as long as it runs; the kernel
drops it when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

LOCK_FILE = "vigil.lock"
PROBE_BYTES = 64 * 1024


class DataDirError(Exception):
    """The data dir cannot be used; the message is one line naming the dir and the cause."""


class DataDirInUse(DataDirError):
    """Another ``vigil up`` holds the data dir."""


def _cause(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def prepare(data_dir: Path) -> Path:
    """Make ``data_dir`` exist, private (0700 dirs, 0600 files) and provably writable.

    Sets the process umask to 077 first, so every file created afterwards (by this
    process or the children it starts) is private too.
    """
    os.umask(0o077)
    data_dir = ensure_writable(data_dir)
    restrict(data_dir)
    return data_dir


def ensure_writable(data_dir: Path) -> Path:
    """Create ``data_dir`` if missing and prove it takes writes; returns its absolute path."""
    data_dir = data_dir.resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"data dir {data_dir}: exists and is not a directory") from None
    except OSError as exc:
        raise DataDirError(f"data dir {data_dir}: cannot create it: {_cause(exc)}") from None
    check_writable(data_dir)
    return data_dir


def check_writable(directory: Path, size: int = PROBE_BYTES) -> None:
    """Write, fsync and remove ``size`` bytes in ``directory``; raise DataDirError if that fails.

    A real write, not ``os.access``: a read-only mount, a full disk and missing
    permissions all show up here, and root passes permission checks that it fails later.
    """
    probe = directory / f".vigil-write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * size)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataDirError(f"data dir {directory} is not writable: {_cause(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def writable(directory: Path, size: int = PROBE_BYTES) -> bool:
    try:
        check_writable(directory, size)
    except DataDirError:
        return False
    return True


def restrict(data_dir: Path) -> None:
    """chmod 0700 every directory and 0600 every file under ``data_dir`` (links untouched)."""
    for root, dirs, files in os.walk(data_dir):
        for name, mode in [(".", 0o700)] + [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):  # not ours, or gone meanwhile
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    os.chmod(path, mode)


@dataclass
class DataDirLock:
    """An exclusive lock on a data dir, naming its holder (pid, URL, start time)."""

    data_dir: Path
    fd: int | None = None

    @property
    def path(self) -> Path:
        return self.data_dir / LOCK_FILE

    def acquire(self, holder: str) -> DataDirLock:
        """Lock, or raise DataDirInUse naming the holder; ``holder`` says who we are
        (e.g. ``vigil up, http://127.0.0.1:8080/``) for the next one to read."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DataDirError(f"data dir {self.data_dir}: cannot lock it: {_cause(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirInUse(f"data dir {self.data_dir} is in use by {holder}") from None
        holder_record = {"holder": holder, "pid": os.getpid(), "started_at": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(holder_record) + b"\n", 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        record = orjson.loads(os.pread(fd, 4096, 0))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started_at"]))
        return f"{record['holder']} (pid {record['pid']}, since {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another vigil process"
