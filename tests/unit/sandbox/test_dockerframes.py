"""The docker backend's exec stream reader keeps bounded memory whatever a command prints."""

from __future__ import annotations

import struct

import pytest

from shared.sandbox.dockerframes import STDERR, STDOUT, Frames

pytestmark = pytest.mark.unit


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_split_anywhere_are_joined_in_order() -> None:
    wire = frame(STDOUT, b"hello ") + frame(STDERR, b"oops ") + frame(STDOUT, b"world")
    for size in (1, 3, 7, 8, 9, len(wire)):
        frames = Frames(max_output=1000, keep=1000)
        for start in range(0, len(wire), size):
            frames.feed(wire[start : start + size])
        assert bytes(frames.output) == b"hello oops world"
        assert bytes(frames.streams[STDOUT]) == b"hello world"
        assert bytes(frames.streams[STDERR]) == b"oops "
        assert not frames.truncated


def test_a_chatty_command_keeps_only_the_caps() -> None:
    frames = Frames(max_output=100, keep=10)
    block = b"y\n" * 32_768
    for _ in range(200):  # 12.5 MiB through the reader
        frames.feed(frame(STDOUT, block))
    assert len(frames.output) == 100
    assert len(frames.streams[STDOUT]) == 10
    assert frames.truncated
    assert frames.dropped == 200 * len(block) - 100


def test_no_kept_streams_by_default() -> None:
    frames = Frames(max_output=5)
    frames.feed(frame(STDERR, b"abcdefgh"))
    assert bytes(frames.output) == b"abcde"
    assert frames.streams[STDERR] == bytearray()
    assert frames.truncated


def test_an_unknown_stream_counts_in_the_output_only() -> None:
    frames = Frames(max_output=50, keep=50)
    frames.feed(frame(0, b"stdin echo") + frame(STDOUT, b"!"))
    assert bytes(frames.output) == b"stdin echo!"
    assert bytes(frames.streams[STDOUT]) == b"!"
