#!/usr/bin/env python3
"""Writes a small face pack and verification benchmarks in the formats insightface ships,
with Python's standard library alone (struct, pickle, zlib): test data for centerloss's
RecordIO and .bin readers, made from the formats' specification rather than by the crate.

    python3 scripts/make_face_packs.py OUT [--identities 5] [--images 4] [--size 24] [--rgb]

OUT/train.rec, OUT/train.idx
    An MXNet RecordIO pack laid out as insightface's: record 0 a header (IRHeader flag 2,
    labels [first identity record's key, one past the last]), the images as keys 1..n
    (IRHeader flag 0, label = identity, id = key), then one record per identity (labels
    [its first key, one past its last]). Records are written as dmlc-core's RecordIOWriter
    writes them: magic 0xced7230a, u32 (cflag << 29 | length), bytes, zero padding to 4;
    a record holding the magic at a 4-byte-aligned offset is cut there into parts (cflag
    1, 2, 3) and the magic dropped. Image 3's header carries the magic in its id2 field,
    so that one record is cut inside its header.
OUT/train.lst
    im2rec's list of the image records: key, label, the folder file each was made from.
OUT/folder/<identity>/<n>.png
    The same images as an image folder (identity names are the labels, as numbers).
OUT/pairs.bin, OUT/pairs_p4.bin
    (images, same) pickled by this Python with protocol 2 (bytes as _codecs.encode
    calls) and protocol 4: per identity one genuine pair (its images 1 and 2) and one
    impostor pair (its image 1, the next identity's image 2).
OUT/pairs_images.txt
    For each image of the .bin files, the folder file it is (one path per line).
"""

import argparse
import os
import pickle
import struct
import zlib

MAGIC = 0xCED7230A
IR_FORMAT = "<IfQQ"


def png(width, height, channels, pixels):
    """An 8-bit grey or RGB PNG of row-major interleaved pixels."""
    stride = width * channels
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    colour = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def face(identity, image, size, channels):
    """A deterministic picture: identity-dependent stripes plus per-image noise."""
    state = (identity * 7919 + image * 104729 + 1) & 0xFFFFFFFF
    out = bytearray()
    for y in range(size):
        for x in range(size):
            for c in range(channels):
                state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
                base = 128 + 100 * (((x * (identity + 1) + y * (c + 1)) // 3) % 2 * 2 - 1)
                out.append(max(0, min(255, base + (state >> 24) % 31 - 15)))
    return bytes(out)


def pack(header, payload):
    """MXNet's recordio.pack: IRHeader, its label array when flag > 0, the payload."""
    flag, label, id1, id2 = header
    if isinstance(label, (list, tuple)):
        return struct.pack(IR_FORMAT, len(label), 0.0, id1, id2) + struct.pack("<%df" % len(label), *label) + payload
    return struct.pack(IR_FORMAT, flag, label, id1, id2) + payload


def write_record(out, record):
    """dmlc-core RecordIOWriter::WriteRecord; returns the record's offset."""
    start = out.tell()
    magic = struct.pack("<I", MAGIC)
    parts, begin = [], 0
    for i in range(0, len(record) // 4 * 4, 4):
        if record[i:i + 4] == magic:
            parts.append(record[begin:i])
            begin = i + 4
    parts.append(record[begin:])
    for n, part in enumerate(parts):
        if len(parts) == 1:
            cflag = 0
        else:
            cflag = 1 if n == 0 else (3 if n == len(parts) - 1 else 2)
        out.write(magic + struct.pack("<I", cflag << 29 | len(part)) + part)
    out.write(b"\x00" * (-len(record) % 4))
    return start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--identities", type=int, default=5)
    parser.add_argument("--images", type=int, default=4, help="images per identity (at least 2)")
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--rgb", action="store_true")
    args = parser.parse_args()
    channels = 3 if args.rgb else 1
    os.makedirs(args.out, exist_ok=True)

    images = []  # (identity, number from 1, png bytes)
    for identity in range(args.identities):
        for n in range(1, args.images + 1):
            encoded = png(args.size, args.size, channels, face(identity, n, args.size, channels))
            images.append((identity, n, encoded))
            folder = os.path.join(args.out, "folder", str(identity))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "%03d.png" % n), "wb") as f:
                f.write(encoded)

    first_identity = len(images) + 1
    end = first_identity + args.identities
    index = []
    with open(os.path.join(args.out, "train.rec"), "wb") as rec:
        index.append((0, write_record(rec, pack((0, [float(first_identity), float(end)], 0, 0), b""))))
        for key, (identity, _, encoded) in enumerate(images, start=1):
            id2 = MAGIC if key == 3 else 0
            index.append((key, write_record(rec, pack((0, float(identity), key, id2), encoded))))
        for identity in range(args.identities):
            first = 1 + identity * args.images
            label = [float(first), float(first + args.images)]
            index.append((first_identity + identity, write_record(rec, pack((0, label, 0, 0), b""))))
    with open(os.path.join(args.out, "train.idx"), "w") as idx:
        idx.writelines("%d\t%d\n" % entry for entry in index)
    with open(os.path.join(args.out, "train.lst"), "w") as lst:
        for key, (identity, n, _) in enumerate(images, start=1):
            lst.write("%d\t%f\tfolder/%d/%03d.png\n" % (key, identity, identity, n))

    by_key = {(identity, n): encoded for identity, n, encoded in images}
    bins, same, files = [], [], []
    for identity in range(args.identities):
        other = (identity + 1) % args.identities
        for (a, b, genuine) in [((identity, 1), (identity, 2), True), ((identity, 1), (other, 2), False)]:
            bins += [by_key[a], by_key[b]]
            files += ["folder/%d/%03d.png" % a, "folder/%d/%03d.png" % b]
            same.append(genuine)
    for name, protocol in [("pairs.bin", 2), ("pairs_p4.bin", 4)]:
        with open(os.path.join(args.out, name), "wb") as f:
            pickle.dump((bins, same), f, protocol=protocol)
    with open(os.path.join(args.out, "pairs_images.txt"), "w") as f:
        f.writelines(p + "\n" for p in files)


if __name__ == "__main__":
    main()
