"""The age v1 file format (age-encryption.org/v1), streamed both ways, with X25519 keys.

Written on the ``cryptography`` package's primitives (X25519, HKDF-SHA-256, HMAC-SHA-256,
ChaCha20-Poly1305, scrypt) so that encryption fits the repository sink's single push-based
pass (chunks arrive from the network, are hashed and written as they come); every byte is
checked against Debian's ``age`` CLI in the tests, both ways.

- :class:`Encryptor`: ``header()``, then ``update(plaintext)`` per chunk, then ``finish()``;
  each returns the ciphertext ready to write.
- :class:`Decryptor`: ``feed(ciphertext)`` per chunk, then ``finish()``; each returns the
  plaintext authenticated so far. A truncated or altered file fails (``AgeError``) at the
  first chunk that does not authenticate, or at ``finish`` when its end is missing.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from engine.crypto import bech32
from engine.errors import LifeboatError

VERSION_LINE = b"age-encryption.org/v1"
X25519_INFO = b"age-encryption.org/v1/X25519"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
CHUNK = 64 * 1024  # plaintext bytes per payload chunk
TAG = 16
NONCE = 16  # the payload nonce after the header
MAX_HEADER = 64 * 1024  # a header longer than this is not age's
MAX_SCRYPT_LOG_N = 22  # what age itself accepts for a passphrase (work factor)
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"


class AgeError(LifeboatError):
    """Not an age file, not for these identities, or damaged."""


class AgeKeyError(LifeboatError):
    """A string that is not an age recipient or identity."""


class NoIdentityError(AgeError):
    """None of the identities given opens the file (it was encrypted to others)."""


class WrongPassphraseError(AgeError):
    """The passphrase does not open a passphrase-protected file."""


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Canonical unpadded base64 only (the spec: decoders reject anything else)."""
    try:
        decoded = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise AgeError("a damaged age header (invalid base64)") from None
    if _b64(decoded) != text:
        raise AgeError("a damaged age header (base64 that is not canonical)")
    return decoded


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _key_bytes(text: str, hrp: str, prefix: str, not_one: str) -> bytes:
    """The 32 bytes of a bech32 key written ``prefix...``; AgeKeyError says ``not_one``."""
    try:
        found, key = bech32.decode(text.strip())
    except bech32.Bech32Error as exc:
        raise AgeKeyError(f"{not_one} ({exc})") from None
    if not text.strip().startswith(prefix) or found != hrp or len(key) != 32:
        raise AgeKeyError(f"{not_one} ({prefix}... expected)")
    return key


@dataclass(frozen=True)
class Recipient:
    """An X25519 public key: who a file is encrypted to (``age1...``; not a secret)."""

    key: bytes

    @classmethod
    def parse(cls, text: str) -> Recipient:
        key = _key_bytes(text, RECIPIENT_HRP, "age1", f"{_shown(text)} is not an age recipient")
        try:  # a low-order point would make every file encrypted to it readable by anyone
            X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(key))
        except ValueError:
            raise AgeKeyError(f"{_shown(text)} is not a usable age recipient") from None
        return cls(key)

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self.key)


@dataclass(frozen=True)
class Identity:
    """An X25519 private key (``AGE-SECRET-KEY-1...``): never logged, never shown."""

    secret: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> Identity:
        not_one = "an identity line is not an age identity"  # a secret is never shown
        return cls(_key_bytes(text, IDENTITY_HRP, "AGE-SECRET-KEY-1", not_one))

    @property
    def recipient(self) -> Recipient:
        private = X25519PrivateKey.from_private_bytes(self.secret)
        return Recipient(private.public_key().public_bytes_raw())

    def secret_text(self) -> str:
        """The identity as age writes it, for an identity file and nothing else."""
        return bech32.encode(IDENTITY_HRP, self.secret).upper()

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient})"  # the secret never shows


def _shown(text: str) -> str:
    """A bad key string as said in an error: its start, never a whole (secret) key."""
    text = text.strip()
    return repr(text if len(text) <= 16 or text.startswith("age1") else text[:14] + "…")


def is_passphrase_protected(data: bytes) -> bool:
    """Whether an identity file's bytes are an age file themselves (``age -p``)."""
    return data.startswith(VERSION_LINE + b"\n")


def parse_identities(data: bytes, passphrases: Iterable[str] = ()) -> list[Identity]:
    """The identities of an identity file: ``AGE-SECRET-KEY-1...`` lines (``#`` comments and
    blank lines skipped), or such a file itself encrypted with a passphrase (``age -p``),
    tried with each of ``passphrases`` (e.g. one asked for on the terminal)."""
    if is_passphrase_protected(data):
        for attempt in passphrases:
            try:
                return parse_identities(decrypt_with_passphrase(data, attempt))
            except WrongPassphraseError:
                continue
        raise AgeError("the identity file is protected by a passphrase: give the right one")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise AgeKeyError("the identity file is neither text nor an age file") from None
    identities = [
        Identity.parse(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not identities:
        raise AgeKeyError("the identity file holds no AGE-SECRET-KEY-1... line")
    return identities


# -- the header ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stanza:
    kind: bytes
    args: tuple[bytes, ...]
    body: bytes

    def encode(self) -> bytes:
        line = b" ".join([b"->", self.kind, *self.args]) + b"\n"
        wrapped = _b64(self.body)
        lines = [wrapped[i : i + 64] for i in range(0, len(wrapped), 64)]
        if not lines or len(lines[-1]) == 64:
            lines.append(b"")  # the body ends with a line shorter than 64 columns
        return line + b"".join(part + b"\n" for part in lines)


def _header(file_key: bytes, stanzas: Sequence[_Stanza]) -> bytes:
    head = VERSION_LINE + b"\n" + b"".join(stanza.encode() for stanza in stanzas) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


def _x25519_stanza(file_key: bytes, recipient: Recipient) -> _Stanza:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.key))
    wrap = _hkdf(shared, share + recipient.key, X25519_INFO)
    return _Stanza(
        b"X25519", (_b64(share),), ChaCha20Poly1305(wrap).encrypt(bytes(12), file_key, None)
    )


def _parse_header(data: bytes) -> tuple[list[_Stanza], bytes, int] | None:
    """The stanzas, the MAC'd part and the header's length, or None when ``data`` does not
    hold the whole header yet."""
    start = VERSION_LINE + b"\n"
    if not start.startswith(data[: len(start)]):
        raise AgeError("not an age file (no age-encryption.org/v1 header)")
    end = data.find(b"\n---")
    footer_end = data.find(b"\n", end + 1) if end >= 0 else -1
    if footer_end < 0:
        if len(data) > MAX_HEADER:
            raise AgeError("not an age file: no header end in its first 64 KiB")
        return None
    footer = data[end + 1 : footer_end]
    if not footer.startswith(b"--- ") or len(footer) != len(b"--- ") + 43:
        raise AgeError("a damaged age header (its MAC line is malformed)")
    lines = data[: end + 1].split(b"\n")[:-1]
    if not lines or lines[0] != VERSION_LINE:
        raise AgeError("not an age file (no age-encryption.org/v1 header)")
    stanzas: list[_Stanza] = []
    index = 1
    while index < len(lines):
        parts = lines[index].split(b" ")
        if parts[0] != b"->" or len(parts) < 2 or not all(map(_is_argument, parts[1:])):
            raise AgeError("a damaged age header (a stanza line is malformed)")
        body, index = b"", index + 1
        while True:
            if index >= len(lines):
                raise AgeError("a damaged age header (a stanza has no end)")
            line, index = lines[index], index + 1
            if len(line) > 64:
                raise AgeError("a damaged age header (a stanza line is too long)")
            body += line
            if len(line) < 64:
                break
        stanzas.append(_Stanza(parts[1], tuple(parts[2:]), _unb64(body)))
    return stanzas, data[: end + 4], footer_end + 1


def _is_argument(part: bytes) -> bool:
    """A stanza argument: one or more visible ASCII characters."""
    return bool(part) and all(0x21 <= byte <= 0x7E for byte in part)


def _file_key(stanzas: list[_Stanza], identities: Sequence[Identity]) -> bytes | None:
    if any(stanza.kind == b"scrypt" for stanza in stanzas):
        raise AgeError("a passphrase-encrypted file, not one for identities (age -p)")
    for stanza in stanzas:
        if stanza.kind != b"X25519":
            continue  # another kind of recipient: not ours to open
        if len(stanza.args) != 1 or len(stanza.body) != 32:
            raise AgeError("a damaged age header (a malformed X25519 stanza)")
        share = _unb64(stanza.args[0])
        if len(share) != 32:
            raise AgeError("a damaged age header (an X25519 share is not 32 bytes)")
        for identity in identities:
            private = X25519PrivateKey.from_private_bytes(identity.secret)
            try:
                shared = private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:  # a low-order share: an all-zero secret, refused by the spec
                raise AgeError("a damaged age header (an X25519 share is unusable)") from None
            wrap = _hkdf(shared, share + identity.recipient.key, X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap).decrypt(bytes(12), stanza.body, None)
            except InvalidTag:
                continue
    return None


def _take_whole(
    buffer: bytearray,
    data: bytes | memoryview,
    size: int,
    each: Callable[[bytes | memoryview], bytes],
) -> bytes:
    """``each`` of the whole ``size``-byte chunks of ``buffer`` followed by ``data``, joined;
    the last bytes stay in ``buffer`` (never more than a chunk), even a whole chunk's worth:
    they may be the last chunk, which is sealed differently and known only when the stream
    ends. ``data`` is cut in place, never copied whole (only a chunk that straddles)."""
    whole = (len(buffer) + len(data) - 1) // size
    if whole <= 0:
        buffer += data
        return b""
    done = []
    with memoryview(data) as view:
        start = 0
        if buffer:  # the chunk begun by an earlier call
            start = size - len(buffer)
            done.append(each(bytes(buffer) + bytes(view[:start])))
            buffer.clear()
            whole -= 1
        end = start + whole * size
        done += [each(view[at : at + size]) for at in range(start, end, size)]
        buffer += view[end:]
    return b"".join(done)


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# -- encrypting ------------------------------------------------------------------------------


class Encryptor:
    """Encrypts one stream to ``recipients``; ``header()`` first, ``finish()`` last."""

    def __init__(self, recipients: Sequence[Recipient]) -> None:
        if not recipients:
            raise AgeKeyError("encryption needs at least one recipient")
        self._file_key = os.urandom(16)
        self._stanzas = [_x25519_stanza(self._file_key, r) for r in recipients]
        nonce = os.urandom(NONCE)
        self._nonce = nonce
        self._aead = ChaCha20Poly1305(_hkdf(self._file_key, nonce, b"payload"))
        self._pending = bytearray()
        self._counter = 0
        self._finished = False

    def header(self) -> bytes:
        """The header and the payload's nonce: the file's first bytes."""
        return _header(self._file_key, self._stanzas) + self._nonce

    def update(self, plaintext: bytes | memoryview) -> bytes:
        """The ciphertext of every whole chunk now known not to be the last."""
        return _take_whole(
            self._pending, plaintext, CHUNK, lambda chunk: self._seal(chunk, last=False)
        )

    def finish(self) -> bytes:
        """The last chunk (empty only when the whole stream was)."""
        if self._finished:
            raise AgeError("this age stream was finished already")
        self._finished = True
        return self._seal(bytes(self._pending), last=True)

    def _seal(self, chunk: bytes | memoryview, last: bool) -> bytes:
        sealed = self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, None)
        self._counter += 1
        return sealed


# -- decrypting ------------------------------------------------------------------------------


class Decryptor:
    """Decrypts one stream with the first of ``identities`` it was encrypted to."""

    def __init__(self, identities: Sequence[Identity], *, file_key: bytes | None = None) -> None:
        self._identities = identities
        self._known_key = file_key  # a passphrase stanza's, opened by the caller
        self._buffer = bytearray()
        self._aead: ChaCha20Poly1305 | None = None
        self._counter = 0
        self._finished = False

    def feed(self, data: bytes | memoryview) -> bytes:
        """The plaintext of every chunk now known whole and not last, authenticated."""
        if self._aead is None:
            self._buffer += data
            if not self._start():
                return b""
            data = bytes(self._buffer)  # the payload begun after the header
            self._buffer.clear()
        return _take_whole(
            self._buffer, data, CHUNK + TAG, lambda chunk: self._open(chunk, last=False)
        )

    def finish(self) -> bytes:
        """The last chunk's plaintext; AgeError when the stream ends early."""
        if self._finished:
            raise AgeError("this age stream was finished already")
        self._finished = True
        if self._aead is None and not self._start():
            raise AgeError("the age file ends inside its header: it is truncated")
        if len(self._buffer) < TAG:
            raise AgeError("the age file ends early: it is truncated")
        last = self._open(bytes(self._buffer), last=True)
        if not last and self._counter > 1:
            raise AgeError("the age file ends with an empty chunk: it was altered")
        self._buffer.clear()
        return last

    def _start(self) -> bool:
        parsed = _parse_header(bytes(self._buffer[: MAX_HEADER + 1]))
        if parsed is None:
            return False
        stanzas, macd, length = parsed
        if len(self._buffer) < length + NONCE:
            return False
        known = self._known_key
        file_key = known if known is not None else _file_key(stanzas, self._identities)
        if file_key is None:
            raise NoIdentityError("no identity given opens this file (it was encrypted to others)")
        mac = hmac.new(_hkdf(file_key, b"", b"header"), macd, sha256).digest()
        footer = bytes(self._buffer[len(macd) + 1 : length - 1])
        if not hmac.compare_digest(_b64(mac), footer):
            raise AgeError("the age header was altered (its MAC does not match)")
        nonce = bytes(self._buffer[length : length + NONCE])
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        del self._buffer[: length + NONCE]
        return True

    def _open(self, sealed: bytes | memoryview, last: bool) -> bytes:
        assert self._aead is not None
        try:
            chunk = self._aead.decrypt(_chunk_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            raise AgeError(
                f"chunk {self._counter} of the age file does not authenticate: the file was "
                "altered or truncated"
            ) from None
        self._counter += 1
        return chunk


# -- passphrase-protected identity files -------------------------------------------------------


def decrypt_with_passphrase(data: bytes, passphrase: str) -> bytes:
    """A whole (small) file encrypted with a passphrase (``age -p``): an identity file."""
    parsed = _parse_header(data)
    if parsed is None:
        raise AgeError("the passphrase-protected file is truncated")
    stanzas, _macd, _length = parsed
    stanza = stanzas[0] if len(stanzas) == 1 else None
    if stanza is None or stanza.kind != b"scrypt" or len(stanza.args) != 2:
        raise AgeError("the file is not protected by a passphrase alone")
    salt, work = _unb64(stanza.args[0]), stanza.args[1]
    canonical = work.isdigit() and not work.startswith(b"0") and len(work) <= 2
    log_n = int(work) if canonical else 0
    if len(salt) != 16 or not 1 <= log_n <= MAX_SCRYPT_LOG_N or len(stanza.body) != 32:
        raise AgeError("the passphrase-protected file has an unusable scrypt stanza")
    kdf = Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=2**log_n, r=8, p=1)
    wrap = kdf.derive(passphrase.encode())
    try:
        file_key = ChaCha20Poly1305(wrap).decrypt(bytes(12), stanza.body, None)
        if len(file_key) != 16:
            raise AgeError("the passphrase-protected file holds an unusable file key")
    except InvalidTag:
        raise WrongPassphraseError("wrong passphrase") from None
    decryptor = Decryptor((), file_key=file_key)
    return decryptor.feed(data) + decryptor.finish()
