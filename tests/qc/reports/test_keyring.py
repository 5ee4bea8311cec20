"""The plant's signing keys: created once with mode 0600, rotation keeps old public keys."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from qc.reports.keyring import Keyring, fingerprint, load_public, public_pem


def test_first_use_creates_a_private_key_readable_by_the_owner_only(tmp_path):
    ring = Keyring(tmp_path / "instance")
    key = ring.ensure()
    mode = stat.S_IMODE(ring.private_path.stat().st_mode)
    assert mode == 0o600
    assert ring.ensure().fingerprint == key.fingerprint  # a second start keeps it
    assert list(ring.public_keys()) == [key.fingerprint]
    assert len(key.fingerprint) == 64 and key.fingerprint == fingerprint(key.public)


def test_workers_starting_at_once_agree_on_one_key(tmp_path):
    folder = tmp_path / "instance"
    with ThreadPoolExecutor(8) as pool:
        prints = set(pool.map(lambda _: Keyring(folder).ensure().fingerprint, range(16)))
    assert len(prints) == 1
    assert list(Keyring(folder).public_keys()) == list(prints)
    assert not list(folder.glob(".signing_key-*"))  # no temporary files left


def test_rotation_keeps_the_retired_public_key(tmp_path):
    ring = Keyring(tmp_path)
    first = ring.ensure()
    old, new = ring.rotate()
    assert old == first.fingerprint and new.fingerprint != old
    assert ring.current().fingerprint == new.fingerprint
    assert set(ring.public_keys()) == {old, new.fingerprint}
    assert stat.S_IMODE(ring.private_path.stat().st_mode) == 0o600


def test_public_pem_round_trips(tmp_path):
    key = Keyring(tmp_path).ensure()
    assert fingerprint(load_public(public_pem(key.public).encode())) == key.fingerprint
