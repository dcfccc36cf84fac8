#!/usr/bin/python3
"""Writes the seed corpus of fuzz_frame_decoder.

Each seed is a small byte stream a peer could send: well-formed frames of
every body type, and the framing errors the decoder must reject. The frames
are encoded here by hand (protobuf wire format, frame header, XXH3 hash) so
the seeds do not depend on the code they test. Needs only the standard
library and the xxhash module (Debian: python3-xxhash).

    /usr/bin/python3 tests/fuzz/make_corpus.py [output dir]
"""

import os
import sys

import xxhash

HASH_SEED = 0x01000193
VERSION = 3


def varint(v):
    """Base-128 varint; negative numbers as protobuf writes int32/int64."""
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_int(field, v):
    """A varint field (wire type 0); proto3 leaves out zeros."""
    return varint(field << 3) + varint(v) if v else b""


def f_bytes(field, data):
    """A length-delimited field (wire type 2)."""
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def frame(message, version=VERSION):
    body = varint(version) + varint(len(message)) + message
    h = xxhash.xxh3_64_intdigest(body, seed=HASH_SEED) & 0xFFFFFFFF
    return body + h.to_bytes(4, "little")


def head(source="app-1.ns1", destination="app-2.ns1", **relay):
    m = f_bytes(1, source) + f_bytes(2, destination)
    if relay:
        m += f_bytes(3, relay["forward_for_source"])
        m += f_int(4, relay["forward_for_connection_id"])
        m += f_int(5, relay["hop_count"])
    return f_bytes(1, m)


def ping(field, ping_id, timepoint):
    return head() + f_bytes(field, f_int(1, ping_id) + f_int(2, timepoint))


def fragment(data, packet_type=0, flag=0, token=None, labels=None,
             forward=None, close=None):
    m = f_int(1, packet_type) + f_bytes(2, data) + f_int(3, flag)
    if token is not None:
        m += f_bytes(4, f_bytes(1, token))
    for key, value in (labels or {}).items():
        m += f_bytes(5, f_bytes(1, key) + f_bytes(2, value))
    if forward is not None:
        m += f_bytes(6, forward)
    if close is not None:
        m += f_bytes(7, close)
    return f_bytes(1, m)


def packet(content, stream_id=1, offset=0, flags=0, padding=0,
           timepoint=1700000000000100, **relay):
    p = (f_int(1, stream_id) + f_int(2, offset) + f_bytes(3, content) +
         f_int(4, flags) + f_int(5, padding) + f_int(6, timepoint))
    return head(**relay) + f_bytes(7, p)


def acknowledge(streams, timepoint, delay):
    m = b""
    for stream_id, acked, received_max in streams:
        m += f_bytes(1, f_int(1, stream_id) + f_int(2, acked) +
                     f_int(3, received_max))
    m += f_int(2, timepoint) + f_int(3, delay)
    return head() + f_bytes(8, m)


def register():
    r = (f_bytes(1, "app-1.ns1") + f_int(2, 4242) + f_bytes(3, "host-a") +
         f_bytes(4, "ns1") + f_int(5, 3) + f_int(6, 3) + f_bytes(7, "mem") +
         f_bytes(7, "unix") + f_bytes(7, "ipv4") + f_bytes(8, "0.1.0") +
         f_bytes(9, "node"))
    forward = (f_bytes(1, "app-0.ns2") + f_bytes(2, "ipv4") +
               f_bytes(3, "10.0.0.7") + f_int(4, 7000) + f_int(5, 17))
    close = f_int(1, 1) + f_bytes(2, "bye")
    return fragment(r, packet_type=2, forward=forward, close=close)


def seeds():
    s = {}
    s["ping"] = frame(ping(5, 1, 1700000000000000))
    s["pong"] = frame(ping(6, 1, 1700000000000000))
    two_fragments = (
        fragment(b"hello, ", flag=1, token=b"secret-token",
                 labels={"app": "demo", "area.region": "CN"}) +
        fragment(b"mesh"))
    s["packet_two_fragments"] = frame(packet(two_fragments, padding=2))
    s["packet_register"] = frame(packet(
        register(), stream_id=-1, flags=1, forward_for_source="app-0.ns2",
        forward_for_connection_id=17, hop_count=2))
    s["acknowledge_two_streams"] = frame(acknowledge(
        [(1, 11, 11), (5, 100, 250)], 1700000000000100, 350))
    s["two_frames"] = s["ping"] + s["packet_two_fragments"]
    bad = bytearray(s["pong"])
    bad[-1] ^= 0x01
    s["bad_hash"] = bytes(bad)
    s["truncated"] = s["acknowledge_two_streams"][:-9]
    # Length 0x25 written in three bytes instead of one.
    ping_msg = ping(5, 1, 1700000000000000)
    s["overlong_varint"] = (varint(VERSION) + b"\xa5\x80\x00" + ping_msg +
                            b"\x00\x00\x00\x00")
    s["version_4"] = frame(ping_msg, version=4)
    # Announces a 3 MiB message, above the default 2 MiB cap.
    s["too_large"] = varint(VERSION) + varint(3 << 20) + ping_msg[:16]
    return s


def write_seeds(all_seeds, corpus):
    """Writes seeds to argv[1], or to corpus/<corpus> next to this file."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "corpus", corpus)
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(all_seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print("%-26s %4d bytes" % (name, len(data)))


def main():
    write_seeds(seeds(), "frame_decoder")


if __name__ == "__main__":
    main()
