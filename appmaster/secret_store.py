"""Seal ``environment.secrets`` so that a restarted AppMaster can hand them out again.

The client gives the secrets to the first AppMaster through Skein's key-value store, which lives
in the AppMaster's memory and dies with it. To survive an AppMaster restart, the AppMaster keeps
a *sealed* copy in the job's HDFS record (owner-only permissions): encrypted and authenticated
with Fernet (AES-128-CBC + HMAC-SHA256), under a key derived by HKDF-SHA256 from the
application's TLS private key. YARN localizes that key (``.skein.pem``) into this application's
containers only, every AppMaster attempt gets the same one, and its owner already holds it; so
the sealed copy reveals nothing to anyone who could not already act as the job.

The only module that imports ``cryptography`` (a dependency of Skein's).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "seal", "unseal"]


class SealError(ValueError):
    """A sealed blob that cannot be opened: another key, another job, or damaged."""


def _fernet(key_material: bytes, app_id: str) -> Fernet:
    if not key_material:
        raise SealError("no key material to seal the secrets with")
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"dlsubmit environment.secrets {app_id}".encode(),
    ).derive(key_material)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secrets: Mapping[str, str], key_material: bytes, app_id: str) -> bytes:
    """Encrypt ``secrets`` (name → value) for ``app_id`` under ``key_material``."""
    return _fernet(key_material, app_id).encrypt(json.dumps(dict(secrets)).encode())


def unseal(blob: bytes, key_material: bytes, app_id: str) -> dict[str, str]:
    """The secrets :func:`seal` encrypted; :class:`SealError` when the blob does not open."""
    try:
        plain = _fernet(key_material, app_id).decrypt(blob)
    except InvalidToken as exc:
        raise SealError("the sealed secrets do not open with this application's key") from exc
    value = json.loads(plain)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SealError("the sealed secrets are not a name -> value mapping")
    return value
