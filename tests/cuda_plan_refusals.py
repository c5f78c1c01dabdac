"""The cuda backend's refusals of plan files that it must not run, checked
before any device is used (no GPU needed, except for the other-device case,
which says "no CUDA device" where there is none): a TensorRT engine by name
and by its first bytes, a damaged plan (checksum), one cut short, another
format version, another precision, and one made for another device. Each
must exit non-zero with its own message; so must a tf32 plan asked to run
in fp32, and an unknown precision with an ONNX model. build-engine refuses
a precision other than fp32 and tf32 and a missing -o with a usage error
(exit 2).

Usage: cuda_plan_refusals.py ENGINE WORKDIR
"""
import os
import struct
import subprocess
import sys

MAGIC = b"PECUDAPL"
VERSION = 4
HEADER = 256


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def plan(payload, version=VERSION, device=b"Other GPU 9000", cc=(9, 0),
         precision=b"fp32", checksum=None, payload_bytes=None):
    h = struct.pack("<8sII128sii16sQQ", MAGIC, version, HEADER, device, cc[0],
                    cc[1], precision,
                    len(payload) if payload_bytes is None else payload_bytes,
                    fnv1a64(payload) if checksum is None else checksum)
    return h + b"\0" * (HEADER - len(h)) + payload


def main():
    engine, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    payload = bytes(range(256)) * 4
    cases = [
        ("model.engine", b"anything at all", "TensorRT is not in this build"),
        ("model.trt", b"anything at all", "TensorRT is not in this build"),
        ("trt_magic.bin", b"ftrt" + b"\0" * 60, "TensorRT is not in this build"),
        ("damaged.peplan", plan(payload, checksum=12345), "damaged cuda plan"),
        ("short.peplan", plan(payload)[:-10], "cut short"),
        ("version.peplan", plan(payload, version=99), "format version 99"),
        ("fp16.peplan", plan(payload, precision=b"fp16"),
         "precision 'fp16'; this build runs fp32 and tf32"),
        ("tf32.peplan", plan(payload, precision=b"tf32"),
         "made for precision tf32, and fp32 was asked for"),
        ("device.peplan", plan(payload), None),
    ]
    fail = 0
    for name, data, want in cases:
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        extra = ["--precision", "fp32"] if name == "tf32.peplan" else []
        r = subprocess.run([engine, "bench-model", path, "--backend", "cuda",
                            "--iterations", "1"] + extra,
                           capture_output=True, text=True)
        msg = r.stderr.strip()
        if want is None:  # another device: needs one to compare with
            ok = "made for Other GPU 9000" in msg or "no CUDA device" in msg
        else:
            ok = want in msg
        if r.returncode == 0 or not ok or path not in msg:
            print(f"FAIL: {name}: exit {r.returncode}: {msg!r} "
                  f"(wanted {want!r} and the path)")
            fail = 1
        else:
            print(f"{name}: refused: {msg}")
    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "models", "pattern_cnn.onnx")
    r = subprocess.run([engine, "bench-model", model, "--backend", "cuda",
                        "--precision", "fp16", "--iterations", "1"],
                       capture_output=True, text=True)
    want = "unknown precision 'fp16' (fp32 or tf32)"
    if r.returncode == 0 or want not in r.stderr:
        print(f"FAIL: --precision fp16: exit {r.returncode}: "
              f"{r.stderr.strip()!r} (wanted {want!r})")
        fail = 1
    else:
        print(f"--precision fp16: refused: {r.stderr.strip()}")
    for args, want in [
        (["--precision", "fp16", "-o", os.path.join(work, "x.peplan")],
         "--precision fp16: fp32 or tf32"),
        ([], "usage: build-engine"),
    ]:
        r = subprocess.run([engine, "build-engine", model, "--backend", "cuda"]
                           + args, capture_output=True, text=True)
        if r.returncode != 2 or want not in r.stderr:
            print(f"FAIL: build-engine {args}: exit {r.returncode}: "
                  f"{r.stderr.strip()!r} (wanted exit 2 and {want!r})")
            fail = 1
        else:
            print(f"build-engine {' '.join(args)}: {r.stderr.strip()}")
    return fail


if __name__ == "__main__":
    sys.exit(main())
