"""Key files: a party's Ed25519 identity key and a compute node's ElGamal key share.

Both are small JSON files written with permissions 0600 (created with ``O_EXCL`` so an
existing key is never overwritten by accident).  Loading refuses a key file that the group or
others can read or write: a secret that leaked to other accounts is not a secret any more, and
failing loudly is better than running with it.

File format (one line of JSON)::

    {"format": "statledger-key/v1", "kind": "ed25519" | "elgamal-share", "secret": "<hex 32>"}

Rotation is described in ``docs/deployment.md``.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from statledger.proofs.errors import MalformedError, StatledgerError

if TYPE_CHECKING:
    from statledger.proofs.group import Scalar
    from statledger.proofs.signatures import SigningKey

__all__ = [
    "KEY_FORMAT",
    "KeyFileError",
    "KeyPermissionError",
    "write_secret_file",
    "write_pair_secret",
    "read_secret_file",
    "create_identity_key",
    "load_identity_key",
    "load_or_create_identity_key",
    "load_or_create_seed",
    "create_elgamal_share",
    "load_elgamal_share",
    "load_or_create_elgamal_share",
]

KEY_FORMAT = "statledger-key/v1"
_KINDS = ("ed25519", "elgamal-share", "transport")


class KeyFileError(StatledgerError):
    """A key file that is missing, already exists, or does not parse."""


class KeyPermissionError(KeyFileError):
    """A key file readable or writable by group/others (must be 0600 or stricter)."""


def write_secret_file(path: str | Path, kind: str, secret: bytes) -> Path:
    """Create ``path`` with mode 0600 holding ``secret``; refuse to overwrite an existing file."""
    if kind not in _KINDS:
        raise KeyFileError(f"unknown key kind {kind!r}")
    if len(secret) != 32:
        raise KeyFileError(f"{kind} secret must be 32 bytes, got {len(secret)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"format": KEY_FORMAT, "kind": kind, "secret": secret.hex()}) + "\n"
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {p} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, 0o600)  # in case the umask was stricter than needed, or looser
        os.write(fd, body.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return p


def write_pair_secret(paths: Sequence[str | Path], secret: bytes | None = None) -> bytes:
    """Write a vertical pair secret (docs/deployment.md, "Vertical partners") to every path
    as one line of hex, mode 0600 (a new folder 0700); ``secret`` defaults to 32 fresh
    random bytes.  Returns the secret."""
    key = secrets.token_bytes(32) if secret is None else secret
    if len(key) < 16:
        raise KeyFileError("a pair secret must be at least 16 bytes")
    for path in paths:
        p = Path(path)
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (key.hex() + "\n").encode("ascii"))
        finally:
            os.close(fd)
    return key


def read_secret_file(path: str | Path, kind: str) -> bytes:
    """Read a key file of ``kind``; raise if it is not 0600-or-stricter or does not parse."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileError(f"key file {p} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"key file {p}: cannot open ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {p} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyPermissionError(
                f"key file {p} has permissions {mode:04o}: it must not be accessible by "
                f"group or others; run `chmod 600 {p}` (and consider the key compromised "
                "if other accounts could read it)"
            )
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        obj = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"key file {p}: not a statledger key file") from None
    if not isinstance(obj, dict) or obj.get("format") != KEY_FORMAT:
        raise KeyFileError(f"key file {p}: not a {KEY_FORMAT} key file")
    if obj.get("kind") != kind:
        raise KeyFileError(f"key file {p}: holds a {obj.get('kind')!r} key, expected {kind!r}")
    if set(obj) != {"format", "kind", "secret"}:
        raise KeyFileError(f"key file {p}: unexpected fields")
    secret = obj.get("secret")
    if not isinstance(secret, str) or len(secret) != 64 or secret != secret.lower():
        raise KeyFileError(f"key file {p}: secret must be 64 lowercase hex digits")
    try:
        return bytes.fromhex(secret)
    except ValueError:
        raise KeyFileError(f"key file {p}: secret is not hex") from None


# -- Ed25519 identity ------------------------------------------------------------------------


def create_identity_key(path: str | Path) -> SigningKey:
    """Generate a new Ed25519 identity key and write it to ``path`` (0600)."""
    from statledger.proofs.signatures import SigningKey

    sk = SigningKey.generate()
    write_secret_file(path, "ed25519", sk.to_bytes())
    return sk


def load_identity_key(path: str | Path) -> SigningKey:
    """Load an Ed25519 identity key (refusing group/other-accessible files)."""
    from statledger.proofs.signatures import SigningKey

    raw = read_secret_file(path, "ed25519")
    try:
        return SigningKey.from_bytes(raw)
    except MalformedError as exc:
        raise KeyFileError(f"key file {path}: {exc}") from None


def load_or_create_identity_key(path: str | Path) -> SigningKey:
    """Load the key at ``path``, creating it first if the file does not exist."""
    if not Path(path).exists():
        return create_identity_key(path)
    return load_identity_key(path)


def load_or_create_seed(path: str | Path) -> bytes:
    """A raw 32-byte Ed25519 seed in a 0600 key file (for extra note-signing keys).

    The cluster currently signs checkpoints and cosignatures with the identity key (so a
    verifier finds those keys in the ``party`` entries); this helper stays for deployments
    that want separate keys.
    """
    p = Path(path)
    if not p.exists():
        seed = secrets.token_bytes(32)
        write_secret_file(p, "ed25519", seed)
        return seed
    return read_secret_file(p, "ed25519")


# -- ElGamal key share (compute nodes) -------------------------------------------------------


def create_elgamal_share(path: str | Path) -> Scalar:
    """Generate a compute node's ElGamal key share ``x_i`` (non-zero scalar), 0600 file."""
    from statledger.proofs.group import Scalar

    x = Scalar.random()
    while int(x) == 0:  # a zero share would make X_i the identity
        x = Scalar.random()
    write_secret_file(path, "elgamal-share", x.to_bytes())
    return x


def load_elgamal_share(path: str | Path) -> Scalar:
    """Load an ElGamal key share; the scalar is decoded strictly (``0 < x < n``)."""
    from statledger.proofs.group import Scalar

    raw = read_secret_file(path, "elgamal-share")
    try:
        x = Scalar.from_bytes(raw)
    except MalformedError as exc:
        raise KeyFileError(f"key file {path}: {exc}") from None
    if int(x) == 0:
        raise KeyFileError(f"key file {path}: the key share is zero")
    return x


def load_or_create_elgamal_share(path: str | Path) -> Scalar:
    """Load the share at ``path``, creating it first if the file does not exist."""
    if not Path(path).exists():
        return create_elgamal_share(path)
    return load_elgamal_share(path)
