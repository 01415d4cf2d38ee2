"""Sealed environment.secrets: only this application's key opens them, and nothing is in clear."""

from __future__ import annotations

import pytest

from appmaster.secret_store import SealError, seal, unseal

KEY = b"-----BEGIN PRIVATE KEY-----\nnot a real key, any bytes will do\n-----END PRIVATE KEY-----\n"
APP = "application_1795991410966_0016"
SECRETS = {"WANDB_API_KEY": "wandb-0123456789abcdef", "HF_TOKEN": "hf_secret_value"}


def test_round_trip_and_nothing_in_clear() -> None:
    blob = seal(SECRETS, KEY, APP)
    for name, value in SECRETS.items():
        assert value.encode() not in blob
        assert name.encode() not in blob
    assert unseal(blob, KEY, APP) == SECRETS


def test_another_key_or_another_job_cannot_open_it() -> None:
    blob = seal(SECRETS, KEY, APP)
    with pytest.raises(SealError, match="do not open"):
        unseal(blob, KEY + b"x", APP)
    with pytest.raises(SealError, match="do not open"):
        unseal(blob, KEY, "application_1795991410966_0017")


def test_tampering_is_detected() -> None:
    blob = bytearray(seal(SECRETS, KEY, APP))
    blob[40] ^= 0x01
    with pytest.raises(SealError):
        unseal(bytes(blob), KEY, APP)


def test_no_key_material_is_refused() -> None:
    with pytest.raises(SealError, match="no key material"):
        seal(SECRETS, b"", APP)


def test_sealing_twice_gives_different_bytes() -> None:
    # A fresh IV each time: two jobs with the same secrets do not show it in their records.
    assert seal(SECRETS, KEY, APP) != seal(SECRETS, KEY, APP)
