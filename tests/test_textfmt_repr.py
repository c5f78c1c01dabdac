"""Doubles as the writers print them (pe__put_double) against Python's
repr(float), which prints the shortest decimal that reads back as the value
(David Gay's algorithm, not ours): the same digits and layout, except that
repr adds ".0" to integral values and the writers do not.

Usage: test_textfmt_repr.py PATH/TO/textfmt_print [N]"""
import struct
import subprocess
import sys


def main():
    prog = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300000
    out = subprocess.run([prog, str(n)], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert len(lines) > 0.9 * n, f"only {len(lines)} values printed of {n}"
    bad = 0
    ints = 0
    for line in lines:
        bits, text = line.split(" ")
        v = struct.unpack(">d", bytes.fromhex(bits))[0]
        want = repr(v)
        if want.endswith(".0"):
            want = want[:-2]
            ints += 1
        if text != want:
            bad += 1
            if bad <= 10:
                print(f"{bits}: printed {text!r}, repr {repr(v)!r}", file=sys.stderr)
    print(f"{len(lines)} doubles, {ints} integral, {bad} differ from repr")
    return 1 if bad or ints == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
