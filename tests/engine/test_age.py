"""The age v1 format (engine/crypto/age.py) against Debian's `age` CLI, both ways: what
Lifeboat encrypts `age -d` opens, what `age` encrypts Lifeboat opens; keys as `age-keygen`
writes them; passphrase-protected identity files; and every way a file can be wrong."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from age_keys import keygen, protect

from engine.crypto import bech32
from engine.crypto.age import (
    CHUNK,
    AgeError,
    AgeKeyError,
    Decryptor,
    Encryptor,
    Identity,
    Recipient,
    parse_identities,
)

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1_000_003]


def encrypt(data: bytes, recipients: list[Recipient], piece: int = 7777) -> bytes:
    encryptor = Encryptor(recipients)
    out = bytearray(encryptor.header())
    for start in range(0, len(data), piece):
        out += encryptor.update(data[start : start + piece])
    return bytes(out + encryptor.finish())


def decrypt(data: bytes, identities: list[Identity], piece: int = 5000) -> bytes:
    decryptor = Decryptor(identities)
    out = bytearray()
    for start in range(0, len(data), piece):
        out += decryptor.feed(data[start : start + piece])
    return bytes(out + decryptor.finish())


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Identity, Path]:
    """An identity as `age-keygen` writes it, and its file."""
    return keygen(tmp_path)


def test_keys_read_and_written_as_age_keygen_does(identity: tuple[Identity, Path]) -> None:
    parsed, path = identity
    public = subprocess.run(["age-keygen", "-y", str(path)], capture_output=True, text=True)
    assert str(parsed.recipient) == public.stdout.strip()
    assert Recipient.parse(public.stdout) == parsed.recipient
    secret_line = next(line for line in path.read_text().splitlines() if line.startswith("AGE-"))
    assert parsed.secret_text() == secret_line
    assert secret_line not in repr(parsed)  # the secret never shows
    ours = Identity.generate()
    mine = path.with_name("mine.txt")
    mine.write_text(f"# made by Lifeboat\n{ours.secret_text()}\n")
    public = subprocess.run(["age-keygen", "-y", str(mine)], capture_output=True, text=True)
    assert public.stdout.strip() == str(ours.recipient)


@pytest.mark.parametrize("size", SIZES)
def test_lifeboat_encrypts_what_age_decrypts_and_back(
    identity: tuple[Identity, Path], tmp_path: Path, size: int
) -> None:
    parsed, key = identity
    data = os.urandom(size)
    other = Identity.generate()  # a second recipient: either identity opens the file
    sealed = tmp_path / "ours.age"
    sealed.write_bytes(encrypt(data, [other.recipient, parsed.recipient]))
    opened = subprocess.run(["age", "-d", "-i", str(key), str(sealed)], capture_output=True)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == data
    assert decrypt(sealed.read_bytes(), [other]) == data

    plain = tmp_path / "plain"
    plain.write_bytes(data)
    theirs = tmp_path / "theirs.age"
    subprocess.run(["age", "-r", str(parsed.recipient), "-o", str(theirs), str(plain)], check=True)
    assert decrypt(theirs.read_bytes(), [other, parsed]) == data


def test_a_passphrase_protected_identity_file_opens_with_its_passphrase(
    identity: tuple[Identity, Path], tmp_path: Path
) -> None:
    parsed, key = identity
    answer = "correct horse battery"
    data = protect(key, answer).read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> scrypt ")
    with pytest.raises(AgeError, match="protected by a passphrase: give the right one"):
        parse_identities(data, ["wrong"])
    assert parse_identities(data, ["wrong", answer]) == [parsed]


def test_the_wrong_identity_is_refused(identity: tuple[Identity, Path]) -> None:
    parsed, _key = identity
    sealed = encrypt(b"secret rows", [Identity.generate().recipient])
    with pytest.raises(AgeError, match="no identity given opens this file"):
        decrypt(sealed, [parsed])


def test_altered_or_truncated_files_never_pass(identity: tuple[Identity, Path]) -> None:
    parsed, _key = identity
    data = os.urandom(3 * CHUNK + 100)
    sealed = encrypt(data, [parsed.recipient])
    flipped = bytearray(sealed)
    flipped[-5] ^= 1
    with pytest.raises(AgeError, match="does not authenticate"):
        decrypt(bytes(flipped), [parsed])
    header = bytearray(sealed)
    header[header.index(b"\n---") - 3] ^= 1  # inside the stanza: no key opens it
    with pytest.raises(AgeError):
        decrypt(bytes(header), [parsed])
    for cut in (len(sealed) - 1, len(sealed) - CHUNK, 3 * CHUNK, 200, 30):
        with pytest.raises(AgeError):
            decrypt(sealed[:cut], [parsed])
    # A whole number of chunks cut off at a chunk boundary: the last chunk is missing.
    two_chunks = encrypt(os.urandom(2 * CHUNK + 1), [parsed.recipient])
    with pytest.raises(AgeError):
        decrypt(two_chunks[: -(1 + 16)], [parsed])
    with pytest.raises(AgeError, match="not an age file"):
        decrypt(b"plain text, not encrypted\n" * 10, [parsed])
    start = sealed.index(b"-> X25519 ") + len(b"-> X25519 ")
    low_order = sealed[:start] + base64.b64encode(bytes(32)).rstrip(b"=") + sealed[start + 43 :]
    with pytest.raises(AgeError, match="an X25519 share is unusable"):
        decrypt(low_order, [parsed])


def test_strings_that_are_not_age_keys_say_so() -> None:
    with pytest.raises(AgeKeyError, match="is not an age recipient"):
        Recipient.parse("age1notakey")
    with pytest.raises(AgeKeyError, match="is not an age recipient"):
        Recipient.parse(bech32.encode("age", bytes(31)))
    with pytest.raises(AgeKeyError, match="is not an age recipient"):
        Recipient.parse("ssh-ed25519 AAAA")
    key = Identity.generate()
    typo = str(key.recipient)[:-1] + ("q" if str(key.recipient)[-1] != "q" else "p")
    with pytest.raises(AgeKeyError, match="bad checksum"):
        Recipient.parse(typo)
    with pytest.raises(AgeKeyError) as refused:
        Recipient.parse(key.secret_text())  # a secret where a recipient goes
    assert key.secret_text() not in str(refused.value)
    with pytest.raises(AgeKeyError, match="holds no AGE-SECRET-KEY-1"):
        parse_identities(b"# only a comment\n")


def test_headers_age_would_refuse_are_refused(identity: tuple[Identity, Path]) -> None:
    """The header grammar, read strictly (age's spec: decoders MUST reject the rest)."""
    parsed, _key = identity
    sealed = encrypt(b"rows", [parsed.recipient])
    head_end = sealed.index(b"\n---")
    stanza_at = sealed.index(b"-> X25519 ")
    share = sealed[stanza_at + 10 : stanza_at + 53]
    # The last base64 character of a 32-byte share carries 2 bits that must be zero: the
    # next character of the alphabet decodes to the same bytes, but is not canonical.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    loose = alphabet[alphabet.index(share[-1:]) + 1 :][:1]
    for altered, why in [
        (sealed.replace(b"-> X25519 ", b"-> X25519  ", 1), "an empty argument"),
        (sealed.replace(b"-> X25519 ", b"-> X25519 \x7f", 1), "a byte that is not visible"),
        (sealed[:head_end] + b"\n" + b"A" * 70 + sealed[head_end:], "a line over 64 columns"),
        (sealed.replace(b"\n--- ", b"\n---X", 1), "no space before the MAC"),
        (sealed.replace(share, share[:-1] + loose, 1), "base64 that is not canonical"),
    ]:
        try:
            decrypt(altered, [parsed])
        except AgeError:
            continue
        pytest.fail(f"accepted a header with {why}")
    endless = b"age-encryption.org/v1\n-> X25519 abc\n---" + b"x" * (70 * 1024)
    with pytest.raises(AgeError, match="no header end in its first 64 KiB"):
        decrypt(endless, [parsed])


def test_a_low_order_recipient_is_refused_before_anything_is_encrypted() -> None:
    with pytest.raises(AgeKeyError, match="is not a usable age recipient"):
        Recipient.parse(bech32.encode("age", bytes(32)))
    with pytest.raises(AgeKeyError, match="is not an age recipient"):
        Recipient.parse(str(Identity.generate().recipient).upper())  # age writes it lower case
