"""The secret box: where keys come from, the key file's mode, rotation, and errors that
never carry a secret."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from shared.secrets import (
    KEY_FILE,
    MASK,
    SecretBox,
    SecretKeyError,
    is_encrypted,
    load_keys,
    mask,
    new_key,
    write_key_file,
)


def test_the_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    box = SecretBox.load(tmp_path / "data", env={})
    path = tmp_path / "data" / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretBox.load(tmp_path / "data", env={}).keys == box.keys  # read, not made again
    stored = box.encrypt("s3cret")
    assert is_encrypted(stored) and "s3cret" not in stored
    assert box.decrypt(stored) == "s3cret"
    assert box.encrypt("") == ""  # no secret stays no secret
    assert box.encrypt(stored) == stored  # already stored form: left as it is


def _load(data_dir: str, queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put(SecretBox.load(Path(data_dir), env={}).keys)


def test_services_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    workers = [context.Process(target=_load, args=(str(tmp_path), queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    seen = [queue.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join()
    assert all(keys == seen[0] for keys in seen)
    assert len(seen[0]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]  # no temporary left


def test_keys_from_the_environment_come_first_and_the_file_is_not_made(tmp_path: Path) -> None:
    newest, older = new_key(), new_key()
    old_box = SecretBox([older])
    stored = old_box.encrypt("s3cret")
    box = SecretBox.load(tmp_path, env={"VIGIL_SECRET_KEY": f"{newest}, {older}"})
    assert box.keys == [newest, older]
    assert not (tmp_path / KEY_FILE).exists()
    assert box.decrypt(stored) == "s3cret"
    assert not box.encrypted_with_newest(stored)
    rotated = box.reencrypt(stored)
    assert box.encrypted_with_newest(rotated)
    assert SecretBox([newest]).decrypt(rotated) == "s3cret"


def test_bad_key_material_is_named_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="VIGIL_SECRET_KEY: key 1 is not a Fernet key"):
        SecretBox.load(tmp_path, env={"VIGIL_SECRET_KEY": "not-a-key"})
    write_key_file(tmp_path / KEY_FILE, [new_key(), "also-not-a-key"])
    with pytest.raises(SecretKeyError, match=f"{tmp_path / KEY_FILE}: key 2") as raised:
        load_keys(tmp_path, env={})
    assert "also-not-a-key" not in str(raised.value)


def test_a_secret_under_an_unknown_key_says_so_without_the_secret(tmp_path: Path) -> None:
    stored = SecretBox([new_key()]).encrypt("s3cret")
    box = SecretBox.load(tmp_path, env={})
    with pytest.raises(
        SecretKeyError, match=r"channels\.ops\.secret: cannot be decrypted"
    ) as raised:
        box.decrypt(stored, "channels.ops.secret")
    assert "s3cret" not in str(raised.value) and stored not in str(raised.value)
    assert "s3cret" not in repr(box) and box.keys[0] not in repr(box)


def test_the_api_shows_only_whether_a_secret_is_set() -> None:
    assert (mask("s3cret"), mask("")) == (MASK, "")


def test_the_fingerprint_is_keyed() -> None:
    one, other = SecretBox([new_key()]), SecretBox([new_key()])
    assert one.fingerprint(b"x") == one.fingerprint(b"x")
    assert one.fingerprint(b"x") != other.fingerprint(b"x")
