#!/usr/bin/python3
"""Writes the seed corpus of fuzz_stream_packet.

A seed is one byte of mode (bit 0: byte-stream path; the rest: clock step)
then records of a 2-byte little-endian length and a frame_message, built
with the encoders of make_corpus.py: data packets in order, out of order,
overlapping, with FIN and RESET_OFFSET, and acknowledgements of what the
fuzz target's engine has in flight.

    /usr/bin/python3 tests/fuzz/make_stream_corpus.py [output dir]
"""

import struct

from make_corpus import acknowledge, fragment, packet, write_seeds

HAS_MORE = 1
FINISH_STREAM = 1
RESET_OFFSET = 4


def rec(message):
    return struct.pack("<H", len(message)) + message


def msgs(*parts):
    """Fragments for whole messages: each ends with its end mark."""
    return b"".join(fragment(p) for p in parts)


def seeds():
    s = {}
    s["in_order"] = bytes([0]) + rec(packet(msgs(b"abc", b""), offset=0)) + \
        rec(packet(msgs(b"defg"), offset=5))
    s["out_of_order"] = bytes([2]) + \
        rec(packet(msgs(b"defg"), offset=5)) + \
        rec(packet(fragment(b"ab", flag=HAS_MORE), offset=0)) + \
        rec(packet(msgs(b"c", b""), offset=2))
    s["overlap"] = bytes([4]) + \
        rec(packet(fragment(b"hello wo", flag=HAS_MORE), offset=0)) + \
        rec(packet(fragment(b"lo world"), offset=3)) + \
        rec(packet(msgs(b"x"), offset=12))
    s["fin"] = bytes([1]) + \
        rec(packet(msgs(b"last"), stream_id=4, offset=0,
                   flags=FINISH_STREAM)) + \
        rec(packet(msgs(b"late"), stream_id=4, offset=5))
    s["reset"] = bytes([0]) + \
        rec(packet(msgs(b"after"), stream_id=5, offset=100,
                   flags=RESET_OFFSET))
    s["acks"] = bytes([6]) + \
        rec(acknowledge([(1, 10, 40), (2, 0, 30)], 1000, 5)) + \
        rec(acknowledge([(1, 40, 40), (3, 5, 5)], 2000, 0)) + \
        rec(acknowledge([(1, 999999, 999999)], 0, 0))
    # Found by fuzzing: offset + units past INT64_MAX.
    s["offset_overflow"] = bytes([2]) + \
        rec(packet(msgs(b"def0"), offset=(1 << 63) - 1))
    s["control_stream"] = bytes([1]) + \
        rec(packet(msgs(b"ctl"), stream_id=-2, offset=0))
    return s


def main():
    write_seeds(seeds(), "stream_packet")


if __name__ == "__main__":
    main()
