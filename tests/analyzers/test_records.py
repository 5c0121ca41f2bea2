"""TFRecord framing: checksums, truncation, corruption, resync (real files written by RecordWriter)."""

import os
import struct

import eventfiles
import google_crc32c
import numpy as np
import pytest

from lrdoctor.analyzers import records


def _frame_file(path, offset=0):
    data = path.read_bytes()[offset:]
    return records.frame(records.Buffer(data), str(path), offset)


def _framed_payloads(path, framed):
    buf = records.Buffer(path.read_bytes())
    return [buf.bytes_at(s, n) for s, n in zip(framed.starts.tolist(), framed.lengths.tolist(), strict=True)]


def _payloads(n, rng=None):
    rng = rng or np.random.default_rng(0)
    return [bytes(rng.integers(0, 256, int(rng.integers(1, 90)), dtype=np.uint8)) for _ in range(n)]


class TestBuffer:
    def test_unaligned_reads_match_struct(self):
        data = bytes(range(256)) * 3
        buf = records.Buffer(data)
        pos = np.arange(0, len(data) - 8)
        assert buf.u64(pos).tolist() == [struct.unpack_from("<Q", data, p)[0] for p in pos]
        assert buf.u32(pos).tolist() == [struct.unpack_from("<I", data, p)[0] for p in pos]

    def test_read_from_file_stops_at_its_end(self, tmp_path):
        p = tmp_path / "f"
        p.write_bytes(b"abcdef")
        with open(p, "rb") as f:
            f.seek(2)
            buf = records.Buffer.read(f, 100)
        assert buf.size == 4 and buf.bytes_at(0, 4) == b"cdef"


class TestChecksums:
    def test_masked_crc_matches_tensorboard(self):
        from tensorboard.summary.writer import record_writer

        for payload in (b"", b"x", b"hello world" * 10):
            assert records.masked_crc32c(payload) == record_writer.masked_crc32c(payload)

    @pytest.mark.parametrize("length", [0, 1, 7, 8, 35, 100, 511, 512, 513, 2000])
    def test_vectorized_data_crcs_match_c_library(self, length):
        rng = np.random.default_rng(length)
        data = bytes(rng.integers(0, 256, 40 * (length + 3), dtype=np.uint8))
        buf = records.Buffer(data)
        starts = np.arange(0, 40 * (length + 3) - length, length + 3, dtype=np.int64)[:40]
        lengths = np.full(len(starts), length, dtype=np.int64)
        got = records.data_crcs(buf, starts, lengths)
        want = [records.masked_crc32c(data[s : s + length]) for s in starts.tolist()]
        assert got.tolist() == want
        assert records.masked_crc32c(b"123456789") != google_crc32c.value(b"123456789")  # masked, not raw


class TestFrame:
    def test_good_file_gives_every_payload(self, tmp_path):
        payloads = _payloads(300)
        path = eventfiles.write_records(tmp_path / "f", payloads)
        framed = _frame_file(path)
        got = _framed_payloads(path, framed)
        assert got == payloads
        assert framed.end == path.stat().st_size and framed.warnings == []

    def test_empty_buffer(self):
        framed = records.frame(records.Buffer(b""), "f")
        assert len(framed.starts) == 0 and framed.end == 0 and framed.warnings == []

    @pytest.mark.parametrize("cut", [1, 11, 12, 13, 20, -1])  # inside header, data, footer
    def test_record_cut_short_is_left_for_next_read_without_warning(self, tmp_path, cut):
        payloads = [b"a" * 30] * 5
        path = eventfiles.write_records(tmp_path / "f", payloads)
        last_head = eventfiles.record_offsets(path)[-1][0]
        data = path.read_bytes()
        cut_at = last_head + cut if cut > 0 else len(data) + cut
        framed = records.frame(records.Buffer(data[:cut_at]), "f")
        assert len(framed.starts) == 4
        assert framed.end == last_head and framed.warnings == []

    def test_resumes_at_a_base_offset(self, tmp_path):
        path = eventfiles.write_records(tmp_path / "f", _payloads(10))
        heads = eventfiles.record_offsets(path)
        framed = _frame_file(path, heads[4][0])
        assert len(framed.starts) == 6 and framed.end == path.stat().st_size

    def test_bad_data_checksum_costs_exactly_that_record(self, tmp_path):
        payloads = _payloads(200)
        path = eventfiles.write_records(tmp_path / "f", payloads)
        head, length = eventfiles.record_offsets(path)[57]
        eventfiles.flip_bit(path, head + 12 + length // 2, 3)
        framed = _frame_file(path)
        assert framed.warnings == [f"{path}:{head}: bad checksum; skipped this {length}-byte record"]
        assert len(framed.starts) == 199
        assert framed.end == path.stat().st_size

    def test_bad_data_checksum_in_rare_long_record(self, tmp_path):
        payloads = [b"x" * 40] * 50 + [b"y" * 5000] + [b"x" * 40] * 50
        path = eventfiles.write_records(tmp_path / "f", payloads)
        head, _ = eventfiles.record_offsets(path)[50]
        eventfiles.flip_bit(path, head + 100)
        framed = _frame_file(path)
        assert framed.warnings == [f"{path}:{head}: bad checksum; skipped this 5000-byte record"]
        assert len(framed.starts) == 100

    @pytest.mark.parametrize("field_offset", [0, 2, 7, 9])  # the length, or its checksum
    def test_flipped_bit_in_length_resyncs_and_loses_at_most_that_record(self, tmp_path, field_offset):
        payloads = _payloads(100)
        path = eventfiles.write_records(tmp_path / "f", payloads)
        head, _ = eventfiles.record_offsets(path)[40]
        eventfiles.flip_bit(path, head + field_offset, 6)
        framed = _frame_file(path)
        assert len(framed.warnings) == 1
        assert framed.warnings[0].startswith(f"{path}:{head}: bad length checksum; skipped ")
        got = _framed_payloads(path, framed)
        assert got == payloads[:40] + payloads[41:]
        assert framed.end == path.stat().st_size

    def test_huge_corrupt_length_in_last_record_is_reported(self, tmp_path):
        path = eventfiles.write_records(tmp_path / "f", _payloads(5))
        head, _ = eventfiles.record_offsets(path)[4]
        eventfiles.flip_bit(path, head + 5, 7)  # length becomes ~2**47: "runs past the end"
        framed = _frame_file(path)
        assert len(framed.starts) == 4
        assert framed.warnings == [
            f"{path}:{head}: bad length checksum (not an event file, or corrupt); skipped the remaining "
            f"{path.stat().st_size - head} bytes"
        ]

    def test_garbage_gives_one_warning_and_no_records(self, tmp_path):
        path = tmp_path / "garbage"
        path.write_bytes(os.urandom(100_000))
        framed = _frame_file(path)
        assert len(framed.starts) == 0
        assert framed.warnings == [
            f"{path}:0: bad length checksum (not an event file, or corrupt); "
            "skipped the remaining 100000 bytes"
        ]
        assert framed.end == 100_000

    def test_several_problems_reported_in_file_order(self, tmp_path):
        path = eventfiles.write_records(tmp_path / "f", [b"p" * 30] * 60)
        heads = eventfiles.record_offsets(path)
        eventfiles.flip_bit(path, heads[50][0] + 20)  # data
        eventfiles.flip_bit(path, heads[10][0] + 1)  # length
        framed = _frame_file(path)
        offsets = [int(w.split(":")[1]) for w in framed.warnings]
        assert offsets == [heads[10][0], heads[50][0]]
        assert len(framed.starts) == 58


class TestWalk:
    @pytest.mark.parametrize("kind", ["cycle", "irregular", "cycle_that_changes", "cut_in_cycle"])
    def test_guessing_walk_equals_one_by_one(self, tmp_path, kind):
        rng = np.random.default_rng(7)
        if kind == "irregular":
            sizes = rng.integers(1, 200, 5000)
        elif kind == "cycle_that_changes":  # like a step varint growing from 1 to 2 to 3 bytes
            sizes = np.concatenate([np.tile([30, 35, 28, 33], 300) + extra for extra in (0, 1, 2)])
            sizes[777] = 90
        else:
            sizes = np.tile([30, 35, 28, 33], 3000)
        path = eventfiles.write_records(tmp_path / "f", [b"z" * int(n) for n in sizes])
        data = path.read_bytes()
        if kind == "cut_in_cycle":
            data = data[: len(data) // 2]
        buf = records.Buffer(data)
        heads, stop = records._walk(buf, 0)
        one_by_one, _, stop_one, _ = records._walk_python(buf.raw, buf.size, 0, 10**9)
        assert heads.tolist() == one_by_one and stop == stop_one
