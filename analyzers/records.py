"""TFRecord framing of TensorBoard event files: lengths, masked CRC32C checksums, byte offsets.

An event file is a sequence of records::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

(little-endian). This module only cuts a byte buffer into record payloads and checks both
checksums; what the payload means is `events.py`'s business.

Problems are reported as one-line strings ``"path:offset: problem"`` and never raised:

- a record cut short at the end of the buffer is *normal* (the writer is still writing): it is
  left for the next read, without a warning;
- a bad data checksum with a good length checksum skips just that record;
- a bad length checksum (the length itself cannot be trusted) makes the reader scan forward for
  the next position where a record with both checksums valid starts, so one flipped bit costs
  at most the record it hits.

Speed: an event file holds millions of ~50-byte records, so per-record Python work is the
cost, not the disk. The walk from one length to the next guesses thousands of records at a
time from the cycle of lengths the writer repeats, and checks the guess with one vectorized
read; checksums are computed for all records of one length at once with numpy (slice-by-8
table CRC32C), falling back to the C `google_crc32c` for long or rare lengths.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

import google_crc32c
import numpy as np
from numpy.lib.stride_tricks import as_strided

HEADER_BYTES = 12  # uint64 length + uint32 length crc
FOOTER_BYTES = 4  # uint32 data crc
# A resync scan (after a corrupt length) gives up after this many bytes: a large garbage file
# with an event-file name should cost a warning, not a minute of CPU.
RESYNC_LIMIT_BYTES = 1 << 20
# Bytes of zero padding after the data of a `Buffer`, so that vectorized reads a few bytes past
# a record's end never leave the array.
PAD_BYTES = 32
# Records of one length are checksummed together by numpy when there are at least this many
# of them and they are at most this long; otherwise one C call per record is cheaper.
_VECTOR_MIN_RECORDS = 24
_VECTOR_MAX_BYTES = 512
_VECTOR_CHUNK_RECORDS = 1 << 14  # keeps the working arrays in cache
# The record walk (`_walk`): records followed one by one to learn the cycle of lengths, the
# longest cycle looked for, records guessed at once, and records walked one by one when the
# lengths have no cycle.
_LEARN_RECORDS = 32
_MAX_PERIOD = 16
_GUESS_RECORDS = 1 << 16
_IRREGULAR_RECORDS = 4096
_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _crc32c_tables() -> np.ndarray:
    """Slice-by-8 tables of CRC32C (reflected): ``tables[k][b]`` is the CRC of byte ``b``
    followed by ``k`` zero bytes. Row 0 is the classic byte-at-a-time table."""
    poly = 0x82F63B78  # CRC32C (Castagnoli), reflected
    t0 = np.arange(256, dtype=np.uint64)
    for _ in range(8):
        t0 = np.where(t0 & 1, (t0 >> 1) ^ np.uint64(poly), t0 >> 1)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append((prev >> np.uint64(8)) ^ t0[prev & np.uint64(0xFF)])
    return np.stack(tables)


_TABLES = _crc32c_tables()


def masked_crc32c(data: bytes | bytearray) -> int:
    """TFRecord's masked CRC32C of ``data`` (rotated right by 15 bits, plus a constant)."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _mask(crc: np.ndarray) -> np.ndarray:
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)


class Buffer:
    """Bytes read from one file, with vectorized little-endian reads at any offsets.

    Args:
        data: the bytes; copied once into an 8-byte-aligned, zero-padded array.
        capacity: room for this many bytes (default: ``len(data)``), for `read`.

    Attributes:
        size: number of real bytes (without the padding).
        u8: the bytes as a uint8 array (padded with `PAD_BYTES` zeros or more).
        raw: the same memory as a memoryview, for `struct` and slicing.
    """

    def __init__(self, data: bytes | bytearray | memoryview = b"", *, capacity: int | None = None) -> None:
        capacity = len(data) if capacity is None else max(capacity, len(data))
        self._w64 = np.zeros((capacity + PAD_BYTES + 7) // 8, dtype="<u8")
        self.u8 = self._w64.view(np.uint8)
        self.raw = memoryview(self.u8)
        self.size = len(data)
        self.u8[: self.size] = np.frombuffer(data, dtype=np.uint8)

    @classmethod
    def read(cls, f: BinaryIO, nbytes: int) -> Buffer:
        """Read up to ``nbytes`` from ``f`` straight into a new buffer (fewer if the file is shorter)."""
        buf = cls(capacity=max(nbytes, 0))
        view = buf.raw[: max(nbytes, 0)]
        while buf.size < len(view):
            k = f.readinto(view[buf.size :])
            if not k:
                break
            buf.size += k
        return buf

    def bytes_at(self, start: int, length: int) -> bytes:
        """A copy of ``length`` bytes from ``start``."""
        return self.raw[start : start + length].tobytes()

    def u64(self, pos: np.ndarray) -> np.ndarray:
        """uint64 values stored (unaligned) at each byte offset in ``pos``.

        Offsets past the padding read the last word instead of failing: callers mask out
        bytes beyond a record anyway.
        """
        pos = np.asarray(pos, dtype=np.int64)
        word = np.minimum(pos >> 3, len(self._w64) - 2)
        shift = ((pos & 7) * 8).astype(np.uint64)
        lo = self._w64[word] >> shift
        # (hi << 64) is undefined, so the aligned case takes nothing from the next word.
        hi = np.where(shift > 0, self._w64[word + 1] << ((np.uint64(64) - shift) & np.uint64(63)), 0)
        return lo | hi.astype(np.uint64)

    def u32(self, pos: np.ndarray) -> np.ndarray:
        """uint32 values stored (unaligned) at each byte offset in ``pos``."""
        return (self.u64(pos) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _crc_u64(values: np.ndarray) -> np.ndarray:
    """CRC32C of the 8 little-endian bytes of each uint64 in ``values`` (slice-by-8)."""
    x = values ^ np.uint64(0xFFFFFFFF)
    return _fold8(x) ^ np.uint32(0xFFFFFFFF)


def _fold8(x: np.ndarray) -> np.ndarray:
    """One slice-by-8 step: the CRC state after 8 bytes, given ``state ^ word`` (uint64)."""
    ff, t = np.uint64(0xFF), _TABLES
    crc = t[7][x & ff]
    for k in range(1, 8):
        crc ^= t[7 - k][(x >> np.uint64(8 * k)) & ff]
    return crc.astype(np.uint32)


def _rows(u8: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``u8[s : s + width]`` for each ``s`` in ``starts``, as a (len(starts), width) array."""
    return as_strided(u8, shape=(len(u8) - width + 1, width), strides=(1, 1))[starts]


def _crc_columns(u8: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """CRC32C of ``u8[s : s + length]`` for every ``s`` in ``starts``.

    Slice-by-8 over all records at once: each step folds one 8-byte word of every record in
    with eight table lookups; the last ``length % 8`` bytes go one at a time.
    """
    out = np.empty(len(starts), dtype=np.uint32)
    t0, ff, words = _TABLES[0], np.uint64(0xFF), length // 8
    for a in range(0, len(starts), _VECTOR_CHUNK_RECORDS):
        s = starts[a : a + _VECTOR_CHUNK_RECORDS]
        crc = np.full(len(s), 0xFFFFFFFF, dtype=np.uint64)
        if words:
            w = _rows(u8, s, 8 * words).view("<u8")
            for j in range(words):
                crc = _fold8(crc ^ w[:, j]).astype(np.uint64)
        if length % 8:
            tail = _rows(u8, s + 8 * words, length % 8)
            for j in range(length % 8):
                crc = t0[(crc ^ tail[:, j]) & ff] ^ (crc >> np.uint64(8))
        out[a : a + len(s)] = crc ^ np.uint64(0xFFFFFFFF)
    return out


def data_crcs(buf: Buffer, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masked CRC32C of each record payload ``[start, start + length)`` of ``buf``."""
    out = np.empty(len(starts), dtype=np.uint32)
    if not len(starts):
        return out
    short = lengths <= _VECTOR_MAX_BYTES
    counts = np.bincount(lengths[short], minlength=_VECTOR_MAX_BYTES + 1)
    vectorized = np.zeros(len(starts), dtype=bool)
    for length in np.flatnonzero(counts >= _VECTOR_MIN_RECORDS).tolist():
        idx = np.flatnonzero(lengths == length)
        out[idx] = _mask(_crc_columns(buf.u8, starts[idx], length))
        vectorized[idx] = True
    raw = buf.raw
    for i in np.flatnonzero(~vectorized).tolist():
        s = int(starts[i])
        out[i] = masked_crc32c(raw[s : s + int(lengths[i])])
    return out


@dataclass(slots=True)
class Framed:
    """The checked records cut from one buffer.

    Attributes:
        starts: offset in the buffer of each good record's payload (int64), in file order.
        lengths: each good record's payload length in bytes (int64).
        end: file offset just past the last complete record; the next read starts here.
        warnings: ``"path:offset: problem"`` lines.
    """

    starts: np.ndarray
    lengths: np.ndarray
    end: int = 0
    warnings: list[str] = field(default_factory=list)


def _header_ok(raw: memoryview, pos: int) -> bool:
    return masked_crc32c(raw[pos : pos + 8]) == _U32.unpack_from(raw, pos + 8)[0]


def _resync(buf: Buffer, pos: int) -> int | None:
    """First position after ``pos`` where a whole, checksum-valid record starts, or None.

    Length checksums of all candidate positions are computed at once, a small block first
    (one flipped bit usually leaves the next record a few dozen bytes on), then large blocks.
    """
    raw, size = buf.raw, buf.size
    stop = min(size - HEADER_BYTES, pos + RESYNC_LIMIT_BYTES)
    first, block = pos + 1, 256
    while first <= stop:
        cand = np.arange(first, min(stop + 1, first + block), dtype=np.int64)
        ok = _mask(_crc_u64(buf.u64(cand))) == buf.u32(cand + 8)
        for p in cand[ok].tolist():
            (length,) = _U64.unpack_from(raw, p)
            end = p + HEADER_BYTES + length
            if (
                end + FOOTER_BYTES <= size
                and masked_crc32c(raw[p + HEADER_BYTES : end]) == _U32.unpack_from(raw, end)[0]
            ):
                return p
        first, block = first + len(cand), 1 << 16
    return None


def _walk_python(raw: memoryview, size: int, pos: int, limit: int) -> tuple[list[int], list[int], int, bool]:
    """Follow up to ``limit`` lengths from ``pos``, one by one.

    Returns:
        ``(heads, lengths, stop, at_end)``: header positions and payload lengths followed, the
        position after them, and whether the walk stopped because the next record is not whole
        (or there is none) rather than because of ``limit``.
    """
    heads: list[int] = []
    lengths: list[int] = []
    u64 = _U64.unpack_from
    last = size - HEADER_BYTES
    while len(heads) < limit:
        if pos > last:
            return heads, lengths, pos, True
        (length,) = u64(raw, pos)
        nxt = pos + length + HEADER_BYTES + FOOTER_BYTES
        if nxt > size:
            return heads, lengths, pos, True
        heads.append(pos)
        lengths.append(length)
        pos = nxt
    return heads, lengths, pos, False


def _period(lengths: list[int]) -> int | None:
    """Smallest p such that the lengths repeat every p records, or None."""
    for p in range(1, min(_MAX_PERIOD, len(lengths) // 2) + 1):
        if lengths[p:] == lengths[:-p]:
            return p
    return None


def _walk(buf: Buffer, pos: int) -> tuple[np.ndarray, int]:
    """Follow record lengths from ``pos`` (checksums unchecked): header positions and where it stopped.

    Writers repeat a short cycle of record lengths (one per tag, while the step's varint keeps
    its size), so after following a few records one by one the rest of the cycle is guessed
    for thousands of records at once and checked with one vectorized read of their lengths:
    the guess is kept up to the first record whose length differs, exactly the records a
    one-by-one walk would have followed. Then it learns again from there.
    """
    raw, size = buf.raw, buf.size
    pieces: list[np.ndarray] = []
    while True:
        heads, lengths, pos, at_end = _walk_python(raw, size, pos, _LEARN_RECORDS)
        pieces.append(np.asarray(heads, dtype=np.int64))
        if at_end:
            break
        period = _period(lengths)
        if period is None:  # no cycle: walk a long stretch one by one before trying again
            heads, _, pos, at_end = _walk_python(raw, size, pos, _IRREGULAR_RECORDS)
            pieces.append(np.asarray(heads, dtype=np.int64))
            if at_end:
                break
            continue
        cycle = np.asarray(lengths[-period:], dtype=np.int64)
        steps = cycle + (HEADER_BYTES + FOOTER_BYTES)
        reps = min((size - pos) // int(steps.sum()) + 1, _GUESS_RECORDS // period)
        guess_lengths = np.tile(cycle, reps)
        ends = pos + np.cumsum(np.tile(steps, reps))
        guess = ends - np.tile(steps, reps)
        ok = (ends <= size) & (buf.u64(guess) == guess_lengths.astype(np.uint64))
        n = int(np.argmin(ok)) if not ok.all() else len(ok)
        pieces.append(guess[:n])
        if n:
            pos = int(ends[n - 1])
    return np.concatenate(pieces), pos


def frame(buf: Buffer, path: str, base_offset: int = 0, *, final: bool = True) -> Framed:
    """Cut ``buf`` (the bytes of ``path`` from ``base_offset`` on) into checked record payloads.

    Args:
        buf: raw bytes, starting at a record boundary.
        path: file name used in warnings.
        base_offset: file offset of the buffer's first byte, so warnings and ``end`` are file offsets.
        final: the buffer reaches the end of the file. If not, a resync that finds nothing before
            the buffer's end stops at the corrupt record, to scan on with the next buffer.

    Returns:
        A `Framed`; ``end - base_offset`` bytes of ``buf`` were consumed. Bytes after ``end``
        are an incomplete record (or nothing) and should be offered again on the next read.
    """
    raw, size = buf.raw, buf.size
    problems: list[tuple[int, str]] = []  # (buffer offset, message), sorted into file order at the end
    good: list[np.ndarray] = []
    pos = 0
    while True:
        heads, stop = _walk(buf, pos)
        bad_at = None
        if len(heads):
            lengths = buf.u64(heads)
            ok = _mask(_crc_u64(lengths)) == buf.u32(heads + 8)
            if not ok.all():
                first_bad = int(np.argmin(ok))
                heads, bad_at = heads[:first_bad], int(heads[first_bad])
        good.append(heads)
        if bad_at is None:
            if stop + HEADER_BYTES > size or _header_ok(raw, stop):
                pos = stop  # the end, or a record still being written: left for the next read
                break
            bad_at = stop  # a length that runs past the end and fails its checksum: corrupt
        nxt = _resync(buf, bad_at)
        if nxt is None and not final and bad_at + RESYNC_LIMIT_BYTES > size - HEADER_BYTES:
            pos = bad_at  # the scan ran out of buffer, not out of limit: go on with more bytes
            break
        if nxt is None:
            problems.append(
                (
                    bad_at,
                    f"bad length checksum (not an event file, or corrupt); skipped the remaining "
                    f"{size - bad_at} bytes",
                )
            )
            pos = size
            break
        problems.append(
            (bad_at, f"bad length checksum; skipped {nxt - bad_at} bytes to the next valid record")
        )
        pos = nxt
    heads = np.concatenate(good)
    lengths = buf.u64(heads).astype(np.int64)
    starts = heads + HEADER_BYTES
    crc_ok = data_crcs(buf, starts, lengths) == buf.u32(starts + lengths)
    if not crc_ok.all():
        for h, n in zip(heads[~crc_ok].tolist(), lengths[~crc_ok].tolist(), strict=True):
            problems.append((h, f"bad checksum; skipped this {n}-byte record"))
        starts, lengths = starts[crc_ok], lengths[crc_ok]
    warnings = [f"{path}:{base_offset + at}: {msg}" for at, msg in sorted(problems)]
    return Framed(starts=starts, lengths=lengths, end=base_offset + pos, warnings=warnings)
