"""Personal identifiers at rest: normalisation, keyed hashing and masking.

E-mail addresses and phone numbers are normalised (so "Alice@Example.com " and "alice@example.com"
are one identifier) and stored only as HMAC-SHA256 under a per-installation secret that lives in a
file outside the database: a copy of `seenext.db` alone cannot be turned back into addresses, not
even by hashing a list of candidates. Nothing readable of them is stored either: a response shows the
masked form ("a***@example.com") only of an address or number the caller sent, derived from what it
sent (`mask`), and any other as its kind alone.

Every value is checked before it can become a node: one that normalises to nothing or to punctuation
alone ("-", " - ", "--") would make strangers one customer, and control or formatting characters (a
NUL, a right-to-left override) make one value look like another, so both are refused, naming the field.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import unicodedata
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
# Unicode categories refused in any identifier: control (Cc: NUL, ESC, ...), format (Cf: bidi overrides,
# zero-width joiners), surrogates (Cs), line and paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_EMAIL_LOCAL_REFUSED = frozenset('"(),:;<>[\\]')
# A domain label: letters (any script) or digits, hyphens inside, at most 63 characters.
_DOMAIN_LABEL = re.compile(r"(?=.{1,63}$)[^\W_](?:[\w-]*[^\W_])?")


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
    text = value.strip()
    check_characters(text, field)
    if kind == "EMAIL":
        return normalise_email(text, field)
    if kind == "PHONE":
        return normalise_phone(text, field, country_code)
    if kind == "LOYALTY_CARD":  # printed "6335 0000 1234-5" and scanned "63350000123455" are one card
        text = re.sub(r"[\s\-]", "", text).upper()
    if not any(c.isalnum() for c in text):
        # "-", " - " and "--" would all be one (empty) card: every stranger sending one would merge.
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise InvalidArgument(field, f"has no letter or digit, only spaces or punctuation (got {shown!r})")
    return text


def check_characters(text: str, field: str) -> None:
    """Refuses control, formatting and line-separator characters anywhere in a value (after trimming):
    a NUL or a right-to-left override (U+202E) makes two different values look alike in a log or a form."""
    for n, c in enumerate(text):
        if unicodedata.category(c) in _REFUSED_CATEGORIES:
            raise InvalidArgument(
                field,
                f"holds a control or formatting character (U+{ord(c):04X}, {unicodedata.category(c)}) "
                f"at position {n}; identifiers are printable text",
            )


def normalise_email(value: str, field: str) -> str:
    """Trimmed and lower-cased. Provider tricks (dots, +tags) are left alone: they differ per provider.

    The shape is checked (one @, a local part of printable characters, a domain of dot-separated
    labels), not whether the mailbox exists: "x@y@z" and "a@." would otherwise be stored as identifiers.
    """
    email = value.strip().lower()
    check_characters(email, field)
    local, at, domain = email.rpartition("@")
    problem = _email_problem(local, at, domain)
    if problem:
        raise InvalidArgument(field, f"is not an e-mail address: {problem} ({_masked_for_message(email)})")
    return email


def _email_problem(local: str, at: str, domain: str) -> str:
    if not at or not local or not domain:
        return "expected name@domain"
    if "@" in local:
        return "more than one @"
    if len(local) > 64 or len(local) + len(domain) + 1 > 254:
        return f"{len(local) + len(domain) + 1} characters, at most 254 (64 before the @)"
    if any(c.isspace() or c in _EMAIL_LOCAL_REFUSED for c in local):
        return "spaces, quotes and ()<>[]\\,;: are not allowed before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "a dot at the start or end of the name, or two dots in a row"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return "the domain must be labels of letters, digits and hyphens separated by dots (example.com)"
    return ""


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
    """A masked form to show the caller who sent the value: "a***@example.com", "+*********958";
    other kinds as they are. It is derived from the value at hand and never stored."""
    if kind == "EMAIL":
        local, _, domain = normalised.rpartition("@")
        return f"{local[:1]}***@{domain}" if local else "***"
    if kind == "PHONE":
        sign = "+" if normalised.startswith("+") else ""
        digits = normalised.lstrip("+")
        return sign + "*" * max(len(digits) - 3, 0) + digits[-3:]
    return normalised


def _masked_for_message(email: str) -> str:
    """The mask of a refused value, shortened: an error message never echoes a long value whole."""
    shown = mask("EMAIL", email)
    return shown if len(shown) <= 40 else shown[:37] + "..."
