"""The data dir at start: private modes, a lock naming its holder, one clear line when
it cannot be written, and the open-file limit raised for every process."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.datadir import DataDirInUse, DataDirLock, prepare
from shared.natsserver import free_port


@pytest.fixture
def restore_umask() -> Iterator[None]:
    """``prepare`` sets the process umask; the other tests keep theirs."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_prepare_makes_the_data_dir_and_what_it_holds_private(
    tmp_path: Path, restore_umask: None
) -> None:
    data = tmp_path / "data"
    (data / "nats").mkdir(parents=True, mode=0o755)
    (data / "metrics.db").write_bytes(b"x")
    (data / "metrics.db").chmod(0o644)
    prepare(data)
    assert _mode(data) == 0o700 and _mode(data / "nats") == 0o700
    assert _mode(data / "metrics.db") == 0o600
    (data / "later.db").write_bytes(b"y")  # created after: the umask keeps it private
    assert _mode(data / "later.db") == 0o600
    assert sorted(p.name for p in data.iterdir()) == ["later.db", "metrics.db", "nats"]


def test_a_locked_data_dir_names_its_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path).acquire("vigil up, http://127.0.0.1:8080/"):
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(tmp_path).acquire("vigil up, http://127.0.0.1:9090/")
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and "http://127.0.0.1:8080/" in message
        assert str(tmp_path) in message and "\n" not in message
    DataDirLock(tmp_path).acquire("vigil up, http://127.0.0.1:9090/").release()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only bind mount (root can write anywhere else)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    directory = tmp_path / "readonly"
    directory.mkdir()
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)


def _vigil(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )


@pytest.mark.parametrize("subdir", ["", "data"])
def test_vigil_up_on_an_unwritable_data_dir_fails_with_one_line(
    read_only_dir: Path, subdir: str
) -> None:
    data = read_only_dir / subdir
    result = _vigil(["up", "--no-agent", "--port", str(free_port()), "--data-dir", str(data)], {})
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert str(data) in line and "read-only file system" in line
    assert result.stdout == ""


def test_vigil_run_on_an_unwritable_data_dir_fails_with_one_line(read_only_dir: Path) -> None:
    env = {"NATS_URL": f"nats://127.0.0.1:{free_port()}", "VIGIL_DATA_DIR": str(read_only_dir)}
    result = _vigil(["run", "metrics"], env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert str(read_only_dir) in line and "read-only file system" in line


def _open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise LookupError(pid)


def test_vigil_run_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = min(256, hard)
    if soft == hard:
        pytest.skip("the hard limit is too low to tell a raised limit apart")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    base = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env = {**base, "NATS_URL": f"nats://127.0.0.1:{free_port()}", "VIGIL_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(  # no server answers: it keeps trying to connect
        [sys.executable, "-m", "services.cli", "run", "metrics"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=lower,
    )
    try:
        assert _open_file_limits(process.pid)[0] == soft
        deadline = time.monotonic() + 30
        while _open_file_limits(process.pid) != (hard, hard):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
