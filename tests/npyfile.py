"""Float32 .npy files written and read with the standard library only, for
the tests that drive `infer` (the format numpy.save writes, version 1.0)."""
import struct


def write_npy(path, shape, values):
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    total = (len(d) + 11 + 63) // 64 * 64
    hdr = d + " " * (total - 10 - len(d) - 1) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def read_npy(path):
    b = open(path, "rb").read()
    assert b[:8] == b"\x93NUMPY\x01\x00", b[:8]
    hl = struct.unpack("<H", b[8:10])[0]
    hdr = b[10:10 + hl].decode()
    assert (10 + hl) % 64 == 0
    shape = tuple(int(v) for v in hdr.split("(")[1].split(")")[0].split(",") if v.strip())
    n = len(b[10 + hl:]) // 4
    return shape, struct.unpack("<%df" % n, b[10 + hl:])
