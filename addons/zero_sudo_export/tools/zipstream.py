"""A zip archive written front to back, so that a download can start before its content is
complete: the container of the streamed XLSX (the pure half; no Odoo here).

Python's ``zipfile`` writes to a stream too, but decides at a member's start between plain
headers (the member then fails past 2 GiB) and Zip64 ones (``force_zip64``), which Microsoft
Excel refuses in a file that does not need them (minizip-ng issue 894, duckdb-excel pull 64).
This writer does as Java's ``ZipOutputStream`` and Go's ``archive/zip`` do: every member's CRC
and sizes follow its data (a data descriptor), in 32-bit fields while they fit, and Zip64
records appear in the central directory only past 4 GiB.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# The largest size or offset a plain zip field holds; past it, Zip64 records. A module
# constant so that a test can cross it without writing 4 GiB.
ZIP32_LIMIT = 0xFFFFFFFF
_ZIP64_MARK = 0xFFFFFFFF  # what a 32-bit field says when the value is in the Zip64 record
_COUNT16_LIMIT = 0xFFFF
_VERSION_DEFLATE = 20  # "version needed to extract" 2.0: deflate, data descriptors
_VERSION_ZIP64 = 45
_FLAG_DATA_DESCRIPTOR = 0x08
_DEFLATED = 8
# Every member is dated 1980-01-01 00:00, the earliest a zip holds (xlsxwriter does the same):
# the same rows give the same bytes.
_DOS_TIME, _DOS_DATE = 0, (1 << 5) | 1

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_DESCRIPTOR_32 = struct.Struct("<IIII")
_DESCRIPTOR_64 = struct.Struct("<IIQQ")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_EXTRA = struct.Struct("<HHQQQ")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")


@dataclass(frozen=True)
class _Entry:
    name: bytes
    crc: int
    compressed: int
    size: int
    offset: int

    def central_header(self) -> bytes:
        if max(self.compressed, self.size, self.offset) > ZIP32_LIMIT:
            extra = _ZIP64_EXTRA.pack(0x0001, 24, self.size, self.compressed, self.offset)
            version, compressed, size, offset = _VERSION_ZIP64, _ZIP64_MARK, _ZIP64_MARK, _ZIP64_MARK
        else:
            extra, version, compressed, size, offset = b"", _VERSION_DEFLATE, self.compressed, self.size, self.offset
        header = _CENTRAL_HEADER.pack(
            0x02014B50, version, version, _FLAG_DATA_DESCRIPTOR, _DEFLATED, _DOS_TIME, _DOS_DATE,
            self.crc, compressed, size, len(self.name), len(extra), 0, 0, 0, 0, offset,
        )  # fmt: skip
        return header + self.name + extra


class ZipStream:
    """An archive whose bytes are taken (``take``) while it is written: members one after the
    other (``open``, ``write``, ``close``), then ``close`` writes the central directory."""

    def __init__(self, level: int):
        self.level = level
        self._pending: list[bytes] = []
        self._offset = 0
        self._entries: list[_Entry] = []

    def _emit(self, data: bytes) -> None:
        self._pending.append(data)
        self._offset += len(data)

    def take(self) -> bytes:
        """The bytes written since the last call."""
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def open(self, name: str) -> ZipMember:
        return ZipMember(self, name)

    def write_member(self, name: str, data: bytes) -> None:
        member = self.open(name)
        member.write(data)
        member.close()

    def close(self) -> None:
        start = self._offset
        for entry in self._entries:
            self._emit(entry.central_header())
        count, size = len(self._entries), self._offset - start
        if max(start, size) > ZIP32_LIMIT or count > _COUNT16_LIMIT:
            zip64_end = self._offset
            self._emit(_ZIP64_END.pack(0x06064B50, 44, _VERSION_ZIP64, _VERSION_ZIP64, 0, 0, count, count, size, start))
            self._emit(_ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_end, 1))
        count16 = min(count, _COUNT16_LIMIT)
        self._emit(_END.pack(0x06054B50, 0, 0, count16, count16, min(size, _ZIP64_MARK), min(start, _ZIP64_MARK), 0))


class ZipMember:
    """One deflated member being written; nothing of it stays in memory but zlib's window."""

    def __init__(self, archive: ZipStream, name: str):
        self._archive = archive
        self._name = name.encode()
        self._offset = archive._offset
        self._deflate = zlib.compressobj(archive.level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = self._size = self._compressed = 0
        header = _LOCAL_HEADER.pack(
            0x04034B50, _VERSION_DEFLATE, _FLAG_DATA_DESCRIPTOR, _DEFLATED, _DOS_TIME, _DOS_DATE, 0, 0, 0, len(self._name), 0
        )
        archive._emit(header + self._name)

    def _emit(self, compressed: bytes) -> None:
        if compressed:
            self._compressed += len(compressed)
            self._archive._emit(compressed)

    def write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._emit(self._deflate.compress(data))

    def close(self) -> None:
        self._emit(self._deflate.flush())
        descriptor = _DESCRIPTOR_64 if max(self._size, self._compressed) > ZIP32_LIMIT else _DESCRIPTOR_32
        self._archive._emit(descriptor.pack(0x08074B50, self._crc, self._compressed, self._size))
        self._archive._entries.append(_Entry(self._name, self._crc, self._compressed, self._size, self._offset))
