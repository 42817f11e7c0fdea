"""Personal identifiers at rest: normalisation, keyed hashing and masking.

E-mail addresses and phone numbers are normalised (so "Alice@Example.com " and "alice@example.com"
are one identifier) and stored only as HMAC-SHA256 under a per-installation secret that lives in a
file outside the database: a copy of `seenext.db` alone cannot be turned back into addresses, not
even by hashing a list of candidates. Responses show a masked form ("a***@example.com").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from models.errors import FailedPrecondition, InvalidArgument
from models.storage import Storage

log = logging.getLogger(__name__)

HASHED_KINDS = frozenset({"EMAIL", "PHONE"})
KEY_BYTES = 32
_CHECK = b"seenext pii key check v1"
# The meta key under which the database keeps the fingerprint of the key it was written with.
_FINGERPRINT = "pii_key_fingerprint"
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")
_DIGITS = re.compile(r"[0-9]+")


class PiiKey:
    """The installation's secret; `digest` is what the identifiers table stores for e-mail and phone."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError(f"the PII key must be at least 16 bytes, got {len(secret)}")
        self._secret = secret

    def digest(self, kind: str, normalised: str) -> str:
        mac = hmac.new(self._secret, f"{kind}\x00{normalised}".encode(), hashlib.sha256)
        return "h:" + mac.hexdigest()

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it: stored in the database to catch a swapped key file."""
        return hmac.new(self._secret, _CHECK, hashlib.sha256).hexdigest()[:16]


def open_key(path: Path, storage: Storage) -> PiiKey:
    """Loads the key file (creating it, mode 0600, for a new database) and checks it fits the database.

    A database whose hashes were made with another key would silently stop recognising every
    e-mail and phone, so a missing or different key stops the start with a message instead.
    """
    expected = storage.meta(_FINGERPRINT)
    if not path.exists():
        if expected is not None:
            raise FailedPrecondition(
                f"the PII key file {path} is missing, but this database was written with a key "
                f"(fingerprint {expected}); restore the file or point SEENEXT_PII_KEY_FILE at it"
            )
        _create_key_file(path)
    key = PiiKey(_read_key_file(path))
    if expected is None:
        storage.set_meta(_FINGERPRINT, key.fingerprint)
    elif expected != key.fingerprint:
        raise FailedPrecondition(
            f"the PII key in {path} (fingerprint {key.fingerprint}) is not the one this database was written "
            f"with (fingerprint {expected}); point SEENEXT_PII_KEY_FILE at the right file"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Written aside and linked into place, so a process starting beside us never reads half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return  # another process made it first: use theirs
    finally:
        tmp.unlink()
    log.warning(
        "created a new PII key in %s: back it up apart from the database (without it, stored "
        "e-mail and phone hashes can no longer be matched)",
        path,
    )


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("the PII key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    text = path.read_text().strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise FailedPrecondition(
            f"the PII key file {path} must hold hex digits (e.g. `openssl rand -hex 32`)"
        ) from None


def normalise(kind: str, value: str, field: str, country_code: str = "") -> str:
    """The canonical form of an identifier value; InvalidArgument (value masked) if it cannot be one."""
    if kind == "EMAIL":
        return normalise_email(value, field)
    if kind == "PHONE":
        return normalise_phone(value, field, country_code)
    if kind == "LOYALTY_CARD":  # printed "6335 0000 1234-5" and scanned "63350000123455" are one card
        return re.sub(r"[\s\-]", "", value).upper()
    return value.strip()


def normalise_email(value: str, field: str) -> str:
    """Trimmed and lower-cased. Provider tricks (dots, +tags) are left alone: they differ per provider."""
    email = value.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in email):
        raise InvalidArgument(field, f"is not an e-mail address ({mask('EMAIL', email)})")
    return email


def normalise_phone(value: str, field: str, country_code: str = "") -> str:
    """International numbers become "+<digits>" ("0044 (0)20 7946-0958" -> "+442079460958"); a national
    number ("020 7946 0958") gets `country_code` when one is configured, else stays as its digits."""
    text = value.strip()
    international = text.startswith(("+", "00"))
    if international:
        text = text.replace("(0)", "")  # the trunk zero written inside an international number
    compact = _PHONE_SEPARATORS.sub("", text)
    body = compact[1:] if compact.startswith("+") else compact[2:] if international else compact
    if not _DIGITS.fullmatch(body):
        raise InvalidArgument(
            field, f"is not a phone number: only digits, spaces, +-./() are allowed ({mask('PHONE', body)})"
        )
    if not international and country_code and body.startswith("0") and not body.startswith("00"):
        body, international = country_code + body[1:], True
    if not 6 <= len(body) <= 15:
        raise InvalidArgument(field, f"is not a phone number: {len(body)} digits, expected 6 to 15")
    return ("+" if international else "") + body


def mask(kind: str, normalised: str) -> str:
    """What responses and messages may show: "a***@example.com", "+*********958"; other kinds as they are."""
    if kind == "EMAIL":
        local, _, domain = normalised.rpartition("@")
        return f"{local[:1]}***@{domain}" if local else "***"
    if kind == "PHONE":
        sign = "+" if normalised.startswith("+") else ""
        digits = normalised.lstrip("+")
        return sign + "*" * max(len(digits) - 3, 0) + digits[-3:]
    return normalised
