"""Decoding compressed answers while they stream (http/decoding.py): gzip, deflate (wrapped and
raw), br and stacked encodings in any chunking; the size limit counts decoded bytes, so a
small bomb is refused after at most one step past the limit, never inflated whole."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import pytest

from rollout_yaml.http.decoding import STEP, BodyReader
from rollout_yaml.http.errors import BadAnswer, TooLarge

TEXT = b'{"items": [' + b",".join(b'{"id": %d, "name": "item"}' % n for n in range(3000)) + b"]}"

ENCODED = {
    "gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),
    "raw deflate": zlib.compress(TEXT)[2:-4],
    "br": brotli.compress(TEXT),
    "gzip, br": brotli.compress(gzip.compress(TEXT)),
    "identity": TEXT,
    "": TEXT,
}


def read(encoding: str | None, body: bytes, limit: int, chunk: int = 1000) -> bytes:
    reader = BodyReader(encoding, limit)
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])
    return reader.finish()


CHUNKINGS = [(name, chunk) for name in ENCODED for chunk in (7, 4096, 1 << 20)]


@pytest.mark.parametrize(("name", "chunk"), [*CHUNKINGS, ("gzip", 1)])  # byte by byte once
def test_every_encoding_decodes_whatever_the_chunks(name: str, chunk: int) -> None:
    encoding = "deflate" if name == "raw deflate" else name
    assert read(encoding, ENCODED[name], 10 * len(TEXT), chunk) == TEXT


def test_gzip_with_several_members_is_one_body() -> None:
    body = gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])
    assert read("gzip", body, len(TEXT)) == TEXT


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_the_limit_counts_decoded_bytes(encoding: str) -> None:
    body = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress}[encoding](TEXT)
    assert len(body) < len(TEXT) // 4
    with pytest.raises(TooLarge, match="decoded"):
        read(encoding, body, len(TEXT) - 1)
    assert read(encoding, body, len(TEXT)) == TEXT


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_bomb_is_refused_without_being_inflated(encoding: str) -> None:
    zeros = b"\0" * (64 * 1024 * 1024)
    bomb = gzip.compress(zeros, 9) if encoding == "gzip" else brotli.compress(zeros, quality=5)
    del zeros
    assert len(bomb) < 100 * 1024  # 64 MiB of zeros in a small body
    limit = 1024 * 1024
    tracemalloc.start()
    try:
        reader = BodyReader(encoding, limit)
        with pytest.raises(TooLarge):
            reader.feed(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit + 4 * STEP + len(bomb) + 1024 * 1024  # the limit and a few steps


@pytest.mark.parametrize(
    ("encoding", "body", "says"),
    [
        ("gzip", b"not gzip at all", "cannot be decoded"),
        ("gzip", gzip.compress(TEXT)[:200], "truncated"),
        ("br", brotli.compress(TEXT)[:-3], "truncated"),
        ("br", b"\xff\xff\xff\xff\xff", "cannot be decoded"),
        ("zstd", b"x", "not supported"),
    ],
)
def test_a_corrupt_or_unknown_encoding_is_a_bad_answer(
    encoding: str, body: bytes, says: str
) -> None:
    with pytest.raises(BadAnswer, match=says):
        read(encoding, body, 10 * len(TEXT))
