#!/usr/bin/python3
"""Build and read atbus frames with python3-protobuf and python3-xxhash.

This is the second, independent implementation of the wire format that
test_crosscheck.c holds the C library against: the frame header and hash
are written here from the protocol description, not from the C code, and
the messages come from the protocol's descriptor set through
python3-protobuf. Messages are filled by walking their descriptors, so a
field added to the .proto later is covered without touching this file.

Subcommands (all take --descriptor, the FileDescriptorSet protoc wrote):

  gen --seed N --body ping|pong|packet|acknowledge --out F [--describe D]
      writes a pseudo-random frame that obeys the protocol rules, and its
      canonical description.
  describe --in F
      checks and decodes a frame and prints its canonical description.
  check
      loads the descriptor set and exits 0; callers use it to tell a
      missing interpreter or module from a failing test.

The canonical description has one line per present field, in field-number
order: "path=value". Integers and enums are decimal, bools 0/1, strings
(UTF-8) and bytes lower-case hex, float and double the hex of their IEEE
bits. A present message is "path={}" followed by its own fields as
"path.field"; repeated elements are "path[i]"; map entries are
"path[key]" sorted by key. packet_data.content is described as the
packet_content it holds (raw bytes when flags has TLS_HANDSHAKE), and a
fragment's data as the register_data it holds when packet_type is
REGISTER. Padding is not stripped: these frames are not encrypted.

Exit codes: 0 success, 2 bad usage, 3 malformed frame, 4 hash mismatch,
5 python3-protobuf or python3-xxhash missing.
"""

import argparse
import random
import struct
import sys

EXIT_USAGE = 2
EXIT_MALFORMED = 3
EXIT_HASH = 4
EXIT_NO_MODULE = 5

try:
    import xxhash
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf import message_factory
    from google.protobuf.descriptor import FieldDescriptor
except ImportError as exc:
    print(f"atbus_frames: {exc}", file=sys.stderr)
    sys.exit(EXIT_NO_MODULE)

PACKAGE = "atbus.protocol"
FRAME_VERSION = 3
FRAME_MINIMAL_VERSION = 3
HASH_SEED = 0x01000193
HASH_LEN = 4
PACKET_FLAG_TLS_HANDSHAKE = 0x8
PACKET_TYPE_REGISTER = 2
BODIES = ("ping", "pong", "packet", "acknowledge")

# Bits of each integer type, and whether it is signed.
INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (32, True),
    FieldDescriptor.TYPE_SINT32: (32, True),
    FieldDescriptor.TYPE_SFIXED32: (32, True),
    FieldDescriptor.TYPE_INT64: (64, True),
    FieldDescriptor.TYPE_SINT64: (64, True),
    FieldDescriptor.TYPE_SFIXED64: (64, True),
    FieldDescriptor.TYPE_UINT32: (32, False),
    FieldDescriptor.TYPE_FIXED32: (32, False),
    FieldDescriptor.TYPE_UINT64: (64, False),
    FieldDescriptor.TYPE_FIXED64: (64, False),
}


class FrameError(Exception):
    """A frame that must be rejected; code is the exit status."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code


class Protocol:
    """Message classes built from the descriptor set."""

    def __init__(self, path):
        with open(path, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        self.pool = descriptor_pool.DescriptorPool()
        # --include_imports lists dependencies before their users.
        for fdp in fds.file:
            self.pool.AddSerializedFile(fdp.SerializeToString())
        self._factory = None
        self._classes = {}

    def message_class(self, name):
        """The class of message name (relative to the package)."""
        full = name if "." in name else f"{PACKAGE}.{name}"
        if full not in self._classes:
            desc = self.pool.FindMessageTypeByName(full)
            get_class = getattr(message_factory, "GetMessageClass", None)
            if get_class is not None:
                cls = get_class(desc)
            else:
                if self._factory is None:
                    self._factory = message_factory.MessageFactory(self.pool)
                cls = self._factory.GetPrototype(desc)
            self._classes[full] = cls
        return self._classes[full]

    def new(self, name):
        return self.message_class(name)()


def is_map(fd):
    return (fd.type == FieldDescriptor.TYPE_MESSAGE and
            fd.message_type.GetOptions().map_entry)


# Bytes fields that carry a serialized message, with the condition on the
# containing message under which they do.
NESTED = {
    (f"{PACKAGE}.packet_data", "content"): (
        "packet_content",
        lambda p: not p.flags & PACKET_FLAG_TLS_HANDSHAKE),
    (f"{PACKAGE}.packet_content.fragment_type", "data"): (
        "register_data",
        lambda f: f.packet_type == PACKET_TYPE_REGISTER),
}


def nested_type(parent, fd):
    rule = NESTED.get((parent.DESCRIPTOR.full_name, fd.name))
    if rule is None or not rule[1](parent):
        return None
    return rule[0]


# --- random filling -------------------------------------------------------


class Filler:
    """Reflective pseudo-random filler over any message of the protocol."""

    MAX_DEPTH = 6

    def __init__(self, proto, seed):
        self.proto = proto
        self.rng = random.Random(seed)

    def chance(self, num, den):
        return self.rng.randrange(den) < num

    def integer(self, bits, signed):
        r = self.rng.randrange(8)
        if r == 0:
            v = 0
        elif r == 1:
            # Extremes: the longest varints and zigzag encodings.
            v = self.rng.choice((1, (1 << bits) - 1, 1 << (bits - 1),
                                 (1 << (bits - 1)) - 1))
        else:
            # Uniform bit length, so every varint length is exercised.
            v = self.rng.getrandbits(self.rng.randint(1, bits))
            if signed and self.chance(1, 2):
                v = -v & ((1 << bits) - 1)
        if signed and v >= 1 << (bits - 1):
            v -= 1 << bits
        return v

    def text(self):
        out = []
        for _ in range(self.rng.randrange(13)):
            r = self.rng.randrange(8)
            if r < 5:
                cp = self.rng.randint(0x20, 0x7E)
            elif r == 5:
                cp = self.rng.randint(0x80, 0x7FF)
            elif r == 6:
                # Skip the surrogates: they are not valid UTF-8.
                cp = self.rng.randint(0x800, 0xFFFF - 0x800)
                if cp >= 0xD800:
                    cp += 0x800
            else:
                cp = self.rng.randint(0x10000, 0x10FFFF)
            out.append(chr(cp))
        return "".join(out)

    def blob(self):
        # Empty often: an empty proto2 bytes field is still present.
        n = 0 if self.chance(1, 4) else self.rng.randint(1, 16)
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def scalar(self, fd):
        t = fd.type
        if t in INT_TYPES:
            return self.integer(*INT_TYPES[t])
        if t == FieldDescriptor.TYPE_BOOL:
            return self.chance(1, 2)
        if t == FieldDescriptor.TYPE_ENUM:
            return self.rng.choice(fd.enum_type.values).number
        if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            # Small integers: exact in both widths, never NaN or -0.
            return float(self.rng.randint(1, 1 << 20))
        if t == FieldDescriptor.TYPE_STRING:
            return self.text()
        if t == FieldDescriptor.TYPE_BYTES:
            return self.blob()
        raise ValueError(f"field {fd.full_name}: unsupported type {t}")

    def message(self, msg, depth=0, force=None):
        """Fill msg; force names a oneof member that must be chosen."""
        chosen = set()
        for oneof in msg.DESCRIPTOR.oneofs:
            names = [fd.name for fd in oneof.fields]
            if force in names:
                chosen.add(force)
            else:
                pick = self.rng.randrange(len(names) + 1)
                if pick < len(names):
                    chosen.add(names[pick])
        for fd in msg.DESCRIPTOR.fields:
            if fd.containing_oneof is not None:
                if fd.name in chosen:
                    self.field(msg, fd, depth, always=True)
            else:
                self.field(msg, fd, depth, always=False)

    def field(self, msg, fd, depth, always):
        msg_type = fd.type == FieldDescriptor.TYPE_MESSAGE
        if fd.label == FieldDescriptor.LABEL_REPEATED:
            if depth >= self.MAX_DEPTH and msg_type:
                return
            n = self.rng.randrange(4)
            target = getattr(msg, fd.name)
            if is_map(fd):
                kfd = fd.message_type.fields_by_name["key"]
                vfd = fd.message_type.fields_by_name["value"]
                for _ in range(n):
                    key = self.scalar(kfd)
                    if vfd.type == FieldDescriptor.TYPE_MESSAGE:
                        self.message(target[key], depth + 1)
                    else:
                        target[key] = self.scalar(vfd)
            elif msg_type:
                for _ in range(n):
                    self.message(target.add(), depth + 1)
            else:
                target.extend(self.scalar(fd) for _ in range(n))
            return
        if msg_type:
            if always or (depth < self.MAX_DEPTH and self.chance(3, 4)):
                sub = getattr(msg, fd.name)
                sub.SetInParent()
                self.message(sub, depth + 1)
            return
        if always or self.chance(3, 4):
            setattr(msg, fd.name, self.scalar(fd))

    def nonneg(self, v):
        return ~v if v < 0 else v

    def frame(self, body):
        """A frame_message with the given body that obeys the rules
        atb_frame_message_unpack enforces."""
        frame = self.proto.new("frame_message")
        self.message(frame, force=body)
        if body == "packet":
            p = frame.packet
            if not p.flags & PACKET_FLAG_TLS_HANDSHAKE:
                p.content = self.content().SerializeToString()
            p.stream_offset = self.nonneg(p.stream_offset)
            p.timepoint_microseconds = self.nonneg(p.timepoint_microseconds)
            p.padding_size = self.rng.randint(0, len(p.content))
        elif body == "acknowledge":
            a = frame.acknowledge
            for s in a.streams:
                lo = self.nonneg(s.acknowledge_offset)
                hi = self.nonneg(s.received_max_offset)
                s.acknowledge_offset, s.received_max_offset = sorted((lo, hi))
            a.timepoint_microseconds = self.nonneg(a.timepoint_microseconds)
            a.ack_delay_microseconds = self.nonneg(a.ack_delay_microseconds)
        else:
            p = getattr(frame, body)
            p.timepoint_microseconds = self.nonneg(p.timepoint_microseconds)
        return frame

    def content(self):
        content = self.proto.new("packet_content")
        self.message(content, depth=1)
        if not content.fragment:
            self.message(content.fragment.add(), depth=2)
        for frag in content.fragment:
            if self.chance(1, 3):
                frag.packet_type = PACKET_TYPE_REGISTER
            if frag.packet_type == PACKET_TYPE_REGISTER:
                reg = self.proto.new("register_data")
                self.message(reg, depth=3)
                frag.data = reg.SerializeToString()
        return content


# --- canonical description --------------------------------------------------


def scalar_text(fd, v):
    t = fd.type
    if t in INT_TYPES or t == FieldDescriptor.TYPE_ENUM:
        return str(int(v))
    if t == FieldDescriptor.TYPE_BOOL:
        return "1" if v else "0"
    if t == FieldDescriptor.TYPE_FLOAT:
        return "%08x" % struct.unpack("<I", struct.pack("<f", v))[0]
    if t == FieldDescriptor.TYPE_DOUBLE:
        return "%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if t == FieldDescriptor.TYPE_STRING:
        return v.encode("utf-8").hex()
    if t == FieldDescriptor.TYPE_BYTES:
        return bytes(v).hex()
    raise ValueError(f"field {fd.full_name}: unsupported type {t}")


def map_key_order(kfd, k):
    # Strings sort by their UTF-8 bytes, as C's strcmp does.
    return k.encode("utf-8") if kfd.type == FieldDescriptor.TYPE_STRING else k


class Describer:
    def __init__(self, proto):
        self.proto = proto

    def message(self, msg, prefix, out):
        # ListFields yields exactly the present fields, by field number.
        for fd, value in msg.ListFields():
            path = prefix + fd.name
            if is_map(fd):
                kfd = fd.message_type.fields_by_name["key"]
                vfd = fd.message_type.fields_by_name["value"]
                for k in sorted(value, key=lambda k: map_key_order(kfd, k)):
                    self.value(msg, vfd, value[k],
                               f"{path}[{scalar_text(kfd, k)}]", out)
            elif fd.label == FieldDescriptor.LABEL_REPEATED:
                for i, v in enumerate(value):
                    self.value(msg, fd, v, f"{path}[{i}]", out)
            else:
                self.value(msg, fd, value, path, out)

    def value(self, parent, fd, v, path, out):
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            out.append(f"{path}={{}}")
            self.message(v, path + ".", out)
            return
        nested = nested_type(parent, fd)
        if nested is not None:
            sub = self.proto.new(nested)
            try:
                sub.ParseFromString(bytes(v))
            except Exception as exc:
                raise FrameError(EXIT_MALFORMED,
                                 f"{path} is not a {nested}: {exc}")
            out.append(f"{path}={{}}")
            self.message(sub, path + ".", out)
            return
        out.append(f"{path}={scalar_text(fd, v)}")

    def describe(self, msg):
        out = []
        self.message(msg, "", out)
        return "".join(line + "\n" for line in out)


# --- frames -----------------------------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(data, pos):
    v = 0
    for i in range(10):
        if pos + i >= len(data):
            raise FrameError(EXIT_MALFORMED, "truncated header")
        b = data[pos + i]
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            # A zero last group after others is a longer-than-needed
            # encoding; a reader must not accept two spellings of a header.
            if b == 0 and i > 0:
                raise FrameError(EXIT_MALFORMED, "overlong varint")
            if v >= 1 << 64:
                raise FrameError(EXIT_MALFORMED, "varint above 2^64-1")
            return v, pos + i + 1
    raise FrameError(EXIT_MALFORMED, "overlong varint")


def frame_hash(data):
    return xxhash.xxh3_64_intdigest(data, seed=HASH_SEED) & 0xFFFFFFFF


def frame_wrap(message):
    body = varint(FRAME_VERSION) + varint(len(message)) + message
    return body + frame_hash(body).to_bytes(HASH_LEN, "little")


def frame_unwrap(data):
    """The message bytes of the one frame data holds."""
    version, pos = read_varint(data, 0)
    if not FRAME_MINIMAL_VERSION <= version <= FRAME_VERSION:
        raise FrameError(EXIT_MALFORMED, f"unsupported version {version}")
    length, pos = read_varint(data, pos)
    end = pos + length
    if end + HASH_LEN > len(data):
        raise FrameError(EXIT_MALFORMED, "truncated frame")
    if end + HASH_LEN < len(data):
        raise FrameError(EXIT_MALFORMED, "bytes after the frame")
    got = int.from_bytes(data[end:end + HASH_LEN], "little")
    if got != frame_hash(data[:end]):
        raise FrameError(EXIT_HASH, "hash mismatch")
    return data[pos:end]


# --- commands ---------------------------------------------------------------


def cmd_gen(proto, args):
    frame = Filler(proto, args.seed).frame(args.body)
    with open(args.out, "wb") as f:
        f.write(frame_wrap(frame.SerializeToString()))
    if args.describe:
        with open(args.describe, "w", encoding="ascii") as f:
            f.write(Describer(proto).describe(frame))


def cmd_describe(proto, args):
    with open(args.input, "rb") as f:
        message = frame_unwrap(f.read())
    frame = proto.new("frame_message")
    try:
        frame.ParseFromString(message)
    except Exception as exc:
        raise FrameError(EXIT_MALFORMED, f"not a frame_message: {exc}")
    sys.stdout.write(Describer(proto).describe(frame))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--descriptor", required=True,
                    help="FileDescriptorSet of atbus_protocol.proto")
    sub = ap.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen", help="write a pseudo-random frame")
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--body", choices=BODIES, required=True)
    gen.add_argument("--out", required=True, help="frame file to write")
    gen.add_argument("--describe", help="description file to write")
    desc = sub.add_parser("describe", help="describe a frame file")
    desc.add_argument("--in", dest="input", required=True)
    sub.add_parser("check", help="load the descriptor set and exit")
    args = ap.parse_args()

    proto = Protocol(args.descriptor)
    try:
        if args.command == "gen":
            cmd_gen(proto, args)
        elif args.command == "describe":
            cmd_describe(proto, args)
    except FrameError as exc:
        print(f"atbus_frames: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
