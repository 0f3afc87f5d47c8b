"""addons/zero_sudo_export/tools/zipstream.py without Odoo: the zip written front to back that
carries the streamed XLSX, read back by Python's own zipfile (which checks every CRC)."""

import io
import random
import struct
import zipfile

from conftest import addon_tools

addon_tools("zero_sudo_export")  # before importing from its package, zero_sudo_export_tools
from zero_sudo_export_tools import zipstream  # noqa: E402

CONTENT = {"first.xml": b"<a>" + b"x" * 100_000 + b"</a>", "empty.xml": b"", "second/part.xml": "é".encode()}


def archive_of(members: dict, pieces: list | None = None) -> bytes:
    archive = zipstream.ZipStream(level=1)
    out = pieces if pieces is not None else []
    for name, data in members.items():
        member = archive.open(name)
        for start in range(0, max(len(data), 1), 30_000):
            member.write(data[start : start + 30_000])
            out.append(archive.take())
        member.close()
    archive.close()
    out.append(archive.take())
    return b"".join(out)


def test_the_archive_reads_back_member_for_member():
    with zipfile.ZipFile(io.BytesIO(archive_of(CONTENT))) as archive:
        assert archive.testzip() is None, "every CRC checks"
        assert {name: archive.read(name) for name in archive.namelist()} == CONTENT
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        assert archive.getinfo("first.xml").compress_size < 1000


def test_bytes_leave_while_a_member_is_written():
    pieces = []
    archive_of({"big.bin": random.Random(1).randbytes(200_000)}, pieces)  # incompressible: deflate cannot hold it back
    assert pieces[0].startswith(b"PK\x03\x04"), "the local header leaves with the first write"
    assert sum(1 for piece in pieces if piece) > 2, "compressed data leaves before the member is closed"


def test_a_small_archive_has_no_zip64_record():
    # Microsoft Excel refuses a file with Zip64 records it does not need.
    body = archive_of(CONTENT)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert all(info.extra == b"" and info.extract_version == 20 for info in archive.infolist())
    assert b"PK\x06\x06" not in body and b"PK\x06\x07" not in body
    version_needed = struct.unpack_from("<H", body, 4)[0]
    assert version_needed == 20


def test_past_the_32_bit_limit_sizes_and_offsets_go_to_zip64_records(monkeypatch):
    # 4 GiB is not written here: the limit is lowered, the records are the same.
    monkeypatch.setattr(zipstream, "ZIP32_LIMIT", 100)
    body = archive_of(CONTENT)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert {name: archive.read(name) for name in archive.namelist()} == CONTENT
        first = archive.getinfo("first.xml")
        assert first.extra[:2] == b"\x01\x00", "a Zip64 extra field"
        assert first.file_size == len(CONTENT["first.xml"])
    assert b"PK\x06\x06" in body and b"PK\x06\x07" in body, "the Zip64 end of central directory and its locator"
