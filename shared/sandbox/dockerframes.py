"""Docker's multiplexed exec stream, split into stdout and stderr with bounded memory.

An attached exec without a TTY sends frames of an 8-byte header (1 byte stream id, 3
padding, 4 bytes big-endian size) and a payload. The SDK's own demultiplexers read a
blocking stream to its end and keep everything; the docker backend needs a deadline per
``recv`` and must not grow with a chatty command, so this keeps at most ``max_output``
bytes of the combined output (in arrival order) and at most ``keep`` bytes of each
stream, counting what it drops.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">BxxxL")
STDOUT = 1
STDERR = 2


@dataclass
class Frames:
    """Feed it the socket's bytes as they come; read the capped results after."""

    max_output: int
    """Most bytes of the combined output kept (what a command's result shows)."""
    keep: int = 0
    """Most bytes kept of each of stdout and stderr on their own (the file helper's
    answer and its message); 0 keeps none."""
    output: bytearray = field(default_factory=bytearray)
    streams: dict[int, bytearray] = field(
        default_factory=lambda: {STDOUT: bytearray(), STDERR: bytearray()}
    )
    truncated: bool = False
    """Whether any output was dropped at ``max_output``."""
    dropped: int = 0
    """Payload bytes seen beyond the caps (combined output)."""
    _pending: bytearray = field(default_factory=bytearray)
    _frame_left: int = 0
    _frame_stream: int = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes from the socket, in whatever pieces they arrived."""
        view = memoryview(chunk)
        while view:
            if self._frame_left == 0:
                need = HEADER.size - len(self._pending)
                self._pending += view[:need]
                view = view[need:]
                if len(self._pending) < HEADER.size:
                    return
                self._frame_stream, self._frame_left = HEADER.unpack(self._pending)
                self._pending.clear()
                continue
            piece = view[: self._frame_left]
            view = view[len(piece) :]
            self._frame_left -= len(piece)
            self._take(bytes(piece))

    def _take(self, payload: bytes) -> None:
        room = self.max_output - len(self.output)
        if len(payload) > room:
            self.truncated = True
            self.dropped += len(payload) - max(room, 0)
        if room > 0:
            self.output += payload[:room]
        stream = self.streams.get(self._frame_stream)
        if stream is not None:
            stream_room = self.keep - len(stream)
            if stream_room > 0:
                stream += payload[:stream_room]
