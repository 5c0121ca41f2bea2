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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import google_crc32c

HEADER_BYTES = 12  # uint64 length + uint32 length crc
FOOTER_BYTES = 4  # uint32 data crc
# A resync scan (after a corrupt length) gives up after this many bytes: a large garbage file
# with an event-file name should cost a warning, not a minute of CPU.
RESYNC_LIMIT_BYTES = 1 << 20
_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C of ``data`` (rotated right by 15 bits, plus a constant)."""
    crc = google_crc32c.value(bytes(data)) if isinstance(data, memoryview) else google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(slots=True)
class Framed:
    """The records cut from one buffer.

    Attributes:
        offsets: byte offset (in the file) of each record's header.
        payloads: each record's data, in file order.
        end: file offset just past the last complete record; the next read starts here.
        warnings: ``"path:offset: problem"`` lines.
    """

    offsets: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    end: int = 0
    warnings: list[str] = field(default_factory=list)


def _header_ok(buf: bytes, pos: int) -> bool:
    return masked_crc32c(buf[pos : pos + 8]) == _U32.unpack_from(buf, pos + 8)[0]


def _resync(buf: bytes, pos: int) -> int | None:
    """First position after ``pos`` where a whole, checksum-valid record starts, or None."""
    stop = min(len(buf) - HEADER_BYTES, pos + RESYNC_LIMIT_BYTES)
    for p in range(pos + 1, stop + 1):
        if not _header_ok(buf, p):
            continue
        (length,) = _U64.unpack_from(buf, p)
        end = p + HEADER_BYTES + length
        if end + FOOTER_BYTES <= len(buf) and masked_crc32c(buf[p + HEADER_BYTES : end]) == _U32.unpack_from(
            buf, end
        )[0]:
            return p
    return None


def frame(buf: bytes, path: str, base_offset: int = 0) -> Framed:
    """Cut ``buf`` (the bytes of ``path`` from ``base_offset`` on) into checked record payloads.

    Args:
        buf: raw bytes, starting at a record boundary.
        path: file name used in warnings.
        base_offset: file offset of ``buf[0]``, so warnings and ``end`` are file offsets.

    Returns:
        A `Framed`; ``end - base_offset`` bytes of ``buf`` were consumed. Bytes after ``end``
        are an incomplete record (or nothing) and should be offered again on the next read.
    """
    out = Framed(end=base_offset)
    pos, n = 0, len(buf)
    crc, u64, u32 = masked_crc32c, _U64.unpack_from, _U32.unpack_from
    while pos + HEADER_BYTES <= n:
        header = buf[pos : pos + 8]
        if crc(header) != u32(buf, pos + 8)[0]:
            nxt = _resync(buf, pos)
            if nxt is None:
                skipped = n - pos
                out.warnings.append(
                    f"{path}:{base_offset + pos}: bad length checksum (not an event file, or corrupt); "
                    f"skipped the remaining {skipped} bytes"
                )
                out.end = base_offset + n
                return out
            out.warnings.append(
                f"{path}:{base_offset + pos}: bad length checksum; skipped {nxt - pos} bytes to the next "
                f"valid record"
            )
            pos = nxt
            continue
        (length,) = u64(header)
        data_end = pos + HEADER_BYTES + length
        if data_end + FOOTER_BYTES > n:
            break  # incomplete last record: the writer is still writing it
        data = buf[pos + HEADER_BYTES : data_end]
        if crc(data) != u32(buf, data_end)[0]:
            out.warnings.append(f"{path}:{base_offset + pos}: bad checksum; skipped this {length}-byte record")
        else:
            out.offsets.append(base_offset + pos)
            out.payloads.append(data)
        pos = data_end + FOOTER_BYTES
    out.end = base_offset + pos
    return out
