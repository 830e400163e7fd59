"""Encryption of stored credentials with the environment's `encryption_key`.

The key is a Fernet key (32 random bytes, URL-safe base64: 44 characters), the format
`cryptography` generates with `Fernet.generate_key()`. Fernet is AES-128-CBC with an
HMAC-SHA256 over the whole token, so a ciphertext changed in the database fails to decrypt
rather than decrypting to something else. A passphrase is refused, not stretched: a key that
needs stretching is a key that can be guessed.

Rotation: `encryption_key` may hold several keys separated by commas. The first encrypts; each
of them decrypts (`MultiFernet`). Put the new key first, restart, run
`rollout-yaml credentials rotate` (every stored credential is re-encrypted with the first key),
then remove the old key.

Each ciphertext also names the consumer and the credential key it belongs to, and decrypting
checks them: a row copied onto another consumer's row in the database does not decrypt as that
consumer's credential.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENERATE_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class EncryptionKeyError(ValueError):
    """`encryption_key` is missing or malformed, or a ciphertext does not decrypt with it.
    The message never contains the key."""


def _fernet(key: str, position: int) -> Fernet:
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise EncryptionKeyError(
            f"encryption_key (key {position}) is not a Fernet key (32 bytes, URL-safe base64); "
            + GENERATE_HINT
        ) from exc


class CredentialCipher:
    def __init__(self, setting: str) -> None:
        keys = [part.strip() for part in setting.split(",") if part.strip()]
        if not keys:
            raise EncryptionKeyError("encryption_key is empty; " + GENERATE_HINT)
        fernets = [_fernet(key, index + 1) for index, key in enumerate(keys)]
        self._primary_key = base64.urlsafe_b64decode(keys[0].encode())
        self._box = MultiFernet(fernets)
        self._state_box: Fernet | None = None

    @classmethod
    def of(cls, setting: str | None) -> CredentialCipher:
        if not setting:
            raise EncryptionKeyError(
                "encryption_key is not set in environment.yaml, so credentials cannot be "
                "stored; " + GENERATE_HINT
            )
        return cls(setting)

    def seal(self, consumer: str, key: str, values: Mapping[str, Any]) -> bytes:
        plain = {"consumer": consumer, "key": key, "values": dict(values)}
        return self._box.encrypt(json.dumps(plain, separators=(",", ":")).encode())

    def open(self, consumer: str, key: str, ciphertext: bytes) -> dict[str, Any]:
        try:
            plain = json.loads(self._box.decrypt(ciphertext))
        except InvalidToken as exc:
            raise EncryptionKeyError(
                f"stored credential `{key}` of `{consumer}` does not decrypt with "
                "encryption_key (was the key changed without keeping the old one?)"
            ) from exc
        if plain.get("consumer") != consumer or plain.get("key") != key:
            raise EncryptionKeyError(
                f"stored credential `{key}` of `{consumer}` belongs to another credential"
            )
        values = plain.get("values")
        return dict(values) if isinstance(values, dict) else {}

    def rotate(self, ciphertext: bytes) -> bytes:
        """The same plaintext, encrypted with the first key."""
        try:
            return self._box.rotate(ciphertext)
        except InvalidToken as exc:
            raise EncryptionKeyError("a stored credential does not decrypt with any key") from exc

    def state_box(self) -> Fernet:
        """A key of its own for OAuth `state` values, derived from the first key (HKDF), so a
        state can never be passed off as a stored credential or the other way round."""
        if self._state_box is None:
            derived = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"rollout-yaml oauth state v1",
            ).derive(self._primary_key)
            self._state_box = Fernet(base64.urlsafe_b64encode(derived))
        return self._state_box
