"""Decoding a compressed answer (`Content-Encoding: gzip`, `deflate`, `br`) while it streams in,
with the size limit applied to the decoded bytes.

Each decompressor is asked for a bounded amount of output at a time (zlib's `max_length`,
brotli's `output_buffer_limit`), so a small body that inflates to gigabytes (a "zip bomb") is
refused as too large after at most `limit` plus one step of output has been produced: it is
never held in memory. Several encodings (`gzip, br`) are undone in reverse order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import brotli

from rollout_yaml.http.errors import BadAnswer, TooLarge

ACCEPT_ENCODING = "gzip, deflate, br"
STEP = 64 * 1024
"""Output asked of a decompressor at a time: the most a step can add past the limit."""


class _Decoder:
    def feed(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError

    def finish(self) -> Iterator[bytes]:
        raise NotImplementedError


class _Zlib(_Decoder):
    """gzip (possibly several members) or deflate; for deflate the zlib wrapper RFC 9110 asks
    for, or the raw deflate some servers send instead (told apart by the first two bytes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._inflater: zlib._Decompress | None = None
        self._head = b""

    def _start(self, data: bytes) -> zlib._Decompress:
        if self.name == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._inflater = self._start(data)
        yield from self._inflate(data)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        try:
            while data:
                assert self._inflater is not None
                if self._inflater.eof:
                    if self.name != "gzip":
                        return  # bytes after the deflate stream are ignored
                    self._inflater = self._start(data)  # gzip allows several members
                out = self._inflater.decompress(data, STEP)
                if out:
                    yield out
                eof = self._inflater.eof
                data = self._inflater.unused_data if eof else self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise BadAnswer(f"the {self.name} answer cannot be decoded: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        if self._inflater is None:
            if self._head:
                yield from self.feed(b"\0")  # a one-byte body: let zlib say it is broken
            return
        try:
            out = self._inflater.flush()
        except zlib.error as exc:
            raise BadAnswer(f"the {self.name} answer cannot be decoded: {exc}") from exc
        if out:
            yield out
        if not self._inflater.eof:
            raise BadAnswer(f"the {self.name} answer is truncated")


class _Brotli(_Decoder):
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._decompressor.process(data, output_buffer_limit=STEP)
            while True:
                if out:
                    yield out
                if self._decompressor.can_accept_more_data():
                    return
                out = self._decompressor.process(b"", output_buffer_limit=STEP)
        except brotli.error as exc:
            raise BadAnswer(f"the br answer cannot be decoded: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        try:
            while not self._decompressor.is_finished():
                out = self._decompressor.process(b"", output_buffer_limit=STEP)
                if not out:
                    raise BadAnswer("the br answer is truncated")
                yield out
        except brotli.error as exc:
            raise BadAnswer(f"the br answer cannot be decoded: {exc}") from exc


def _decoder(name: str) -> _Decoder:
    if name in ("gzip", "x-gzip"):
        return _Zlib("gzip")
    if name == "deflate":
        return _Zlib("deflate")
    if name == "br":
        return _Brotli()
    raise BadAnswer(f"the answer's Content-Encoding {name!r} is not supported")


class BodyReader:
    """Collects an answer's body chunk by chunk, decoded, refusing more than `limit` bytes."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        names = [n.strip().lower() for n in (content_encoding or "").split(",")]
        self._chain = [_decoder(n) for n in reversed(names) if n and n != "identity"]
        self.limit = limit
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._keep(self._through(0, chunk))

    def finish(self) -> bytes:
        for index, decoder in enumerate(self._chain):
            for piece in decoder.finish():
                self._keep(self._through(index + 1, piece))
        return bytes(self._body)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        """`data` decoded by the decoders from `index` on, a bounded piece at a time."""
        if index == len(self._chain):
            yield data
            return
        for piece in self._chain[index].feed(data):
            yield from self._through(index + 1, piece)

    def _keep(self, pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            self._body.extend(piece)
            if len(self._body) > self.limit:
                encoded = " (decoded)" if self._chain else ""
                raise TooLarge(f"response larger than {self.limit} bytes{encoded}")
