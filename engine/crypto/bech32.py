"""Bech32 (BIP 173), as age writes its keys: ``age1...`` and ``AGE-SECRET-KEY-1...``.

age uses the original Bech32 checksum without BIP 173's 90-character limit.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(ValueError):
    """Not a valid Bech32 string."""


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            check ^= generator if (top >> i) & 1 else 0
    return check


def _expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], source: int, target: int, pad: bool) -> list[int]:
    accumulator, bits, out = 0, 0, []
    mask = (1 << target) - 1
    for value in data:
        accumulator = (accumulator << source) | value
        bits += source
        while bits >= target:
            bits -= target
            out.append((accumulator >> bits) & mask)
    if pad and bits:
        out.append((accumulator << (target - bits)) & mask)
    elif not pad and (bits >= source or (accumulator << (target - bits)) & mask):
        raise Bech32Error("stray bits at the end")
    return out


def encode(hrp: str, data: bytes) -> str:
    """``data`` under the human-readable part ``hrp`` (lower case)."""
    hrp = hrp.lower()
    words = _regroup(data, 8, 5, pad=True)
    checksum = _polymod([*_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[word] for word in words)


def decode(text: str) -> tuple[str, bytes]:
    """The human-readable part (lower case) and the data of ``text``."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or len(text) - separator < 7:
        raise Bech32Error("no separator or checksum")
    hrp, rest = text[:separator], text[separator + 1 :]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Bech32Error("invalid characters before the separator")
    try:
        words = [CHARSET.index(c) for c in rest]
    except ValueError:
        raise Bech32Error("a character outside the Bech32 alphabet") from None
    if _polymod([*_expand(hrp), *words]) != 1:
        raise Bech32Error("bad checksum (a typo, or a cut-off key)")
    return hrp, bytes(_regroup(words[:-6], 5, 8, pad=False))
