"""TFRecord files of ``tf.train.Example`` records, read and written without TensorFlow or protobuf.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

``data`` is one serialized ``tf.train.Example``, whose protobuf wire format is small enough to decode by hand::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }        (map entry: key = 1, value = 2)
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1; }
    Int64List { repeated int64 value = 1; }

Byte strings are returned as ``(start, end)`` offsets into the file, so an RLDS episode's JPEG frames stay
where they are (a memory-mapped shard) until a sample decodes them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from sfbench.core.errors import DamagedDataset

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C: the CRC rotated right by 15 bits plus a constant (mod 2**32)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass
class Feature:
    """One decoded feature: byte-string offsets into the file, or a numeric array."""

    kind: str  # "bytes" | "float" | "int64"
    spans: list[tuple[int, int]] | None = None  # kind "bytes": (start, end) of each value in the file
    values: np.ndarray | None = None  # "float": float32, "int64": int64


def iter_records(buf: np.ndarray, path: Path, *, check_crc: bool = True) -> Iterator[tuple[int, int]]:
    """The (start, end) of each record's data in ``buf`` (the file's bytes), checking framing and CRCs.

    Raises:
        DamagedDataset: A truncated record or a CRC mismatch, naming the file and the record index.
    """
    pos, n, index = 0, len(buf), 0
    view = memoryview(buf)
    while pos < n:
        if pos + 12 > n:
            raise DamagedDataset(f"{path}: truncated at record {index} (episode {index}): "
                                 f"{n - pos} bytes left, a record header needs 12")
        length, length_crc = _HEADER.unpack_from(view, pos)
        if check_crc and masked_crc(view[pos:pos + 8]) != length_crc:
            raise DamagedDataset(f"{path}: bad length CRC at record {index} (episode {index}), byte {pos}")
        start, end = pos + 12, pos + 12 + length
        if end + 4 > n:
            raise DamagedDataset(f"{path}: truncated at record {index} (episode {index}): needs {end + 4 - n} "
                                 "more bytes (incomplete download?)")
        if check_crc and masked_crc(view[start:end]) != struct.unpack_from("<I", view, end)[0]:
            raise DamagedDataset(f"{path}: bad data CRC at record {index} (episode {index}), byte {start}")
        yield start, end
        pos, index = end + 4, index + 1


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = view[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(view: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end or the varint itself) of a message's fields."""
    pos = start
    while pos < end:
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(view, pos)
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 0:
            value, pos = _varint(view, pos)
            yield number, wire, value, pos
        elif wire == 5:
            yield number, wire, pos, pos + 4
            pos += 4
        elif wire == 1:
            yield number, wire, pos, pos + 8
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("message overruns its length")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_feature(view: memoryview, start: int, end: int) -> Feature:
    for kind_no, _, s, e in _fields(view, start, end):
        if kind_no == 1:
            return Feature("bytes", spans=[(vs, ve) for _, _, vs, ve in _fields(view, s, e)])
        if kind_no == 2:
            parts = [np.frombuffer(view[vs:ve], "<f4") for _, _, vs, ve in _fields(view, s, e)]
            return Feature("float", values=np.concatenate(parts) if parts else np.zeros(0, np.float32))
        if kind_no == 3:
            ints: list[int] = []
            for _, wire, vs, ve in _fields(view, s, e):
                if wire == 0:  # unpacked: the varint itself
                    ints.append(_signed(vs))
                    continue
                pos = vs
                while pos < ve:
                    value, pos = _varint(view, pos)
                    ints.append(_signed(value))
            return Feature("int64", values=np.asarray(ints, np.int64))
    return Feature("bytes", spans=[])  # a Feature with no kind set: an empty list


def parse_example(buf: np.ndarray, start: int, end: int) -> dict[str, Feature]:
    """Decode the ``tf.train.Example`` at ``buf[start:end]`` into ``{key: Feature}``."""
    view = memoryview(buf)
    out: dict[str, Feature] = {}
    for no, _, fs, fe in _fields(view, start, end):
        if no != 1:
            continue
        for entry_no, _, es, ee in _fields(view, fs, fe):
            if entry_no != 1:
                continue
            key, feature = "", Feature("bytes", spans=[])
            for part, _, ps, pe in _fields(view, es, ee):
                if part == 1:
                    key = bytes(view[ps:pe]).decode()
                elif part == 2:
                    feature = _decode_feature(view, ps, pe)
            out[key] = feature
    return out


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, value = value & 0x7F, value >> 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict[str, list[bytes] | np.ndarray]) -> bytes:
    """Serialize ``{key: values}`` as a ``tf.train.Example``: bytes lists, float32 or integer arrays.

    Floats and integers are written packed, as TensorFlow writes them.
    """
    entries = []
    for key, values in features.items():
        if isinstance(values, list):
            body = _length_delimited(1, b"".join(_length_delimited(1, v) for v in values))
        elif np.asarray(values).dtype.kind == "f":
            packed = np.asarray(values, "<f4").tobytes()
            body = _length_delimited(2, _length_delimited(1, packed) if packed else b"")
        else:
            packed = b"".join(_encode_varint(int(v)) for v in np.asarray(values).ravel())
            body = _length_delimited(3, _length_delimited(1, packed) if packed else b"")
        entries.append(_length_delimited(1, _length_delimited(1, key.encode()) + _length_delimited(2, body)))
    return _length_delimited(1, b"".join(entries))


def frame_record(data: bytes) -> bytes:
    """One TFRecord: header, data, footer."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
