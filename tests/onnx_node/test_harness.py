"""The conformance harness catches what it is meant to catch.

    test_harness.py BUILD_DIR

On copies of real node tests (fetched by scripts/fetch-onnx-node-tests.sh
into BUILD_DIR/onnx-node-tests): an expected output with one value's sign
flipped is reported as a wrong result, and so is an altered second input, a truncated one as unreadable data,
a refused model with the engine's message; the list of expected failures
excuses a listed failure, and a listed test that passes or does not exist
makes the run fail, as does one failing for another cause; --update-list keeps a reason while the cause holds.
Standard library only; exits 77 when the node tests are not fetched.
"""

import os
import shutil
import subprocess
import sys
import tempfile

FAILURES = 0


def check(cond, what):
    global FAILURES
    if not cond:
        print("FAILED:", what)
        FAILURES += 1


def run(harness, data, listing, *extra):
    p = subprocess.run(
        [harness, "--data", data, "--list", listing, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, p.stdout + p.stderr


def main():
    build = sys.argv[1]
    node = os.path.join(build, "onnx-node-tests", "node")
    harness = os.path.join(build, "tests", "onnx_node_tests")
    if not os.path.isdir(os.path.join(node, "test_abs")):
        print("SKIP: node tests not fetched (the onnx_node test fetches them)")
        return 77
    tmp = tempfile.mkdtemp(prefix="pe_onnx_node_")
    try:
        data = os.path.join(tmp, "node")
        os.mkdir(data)
        for name in ("test_abs", "test_add", "test_add_uint8", "test_relu",
                     "test_reshape_reduced_dims"):
            shutil.copytree(os.path.join(node, name), os.path.join(data, name))
        listing = os.path.join(tmp, "list.txt")

        def expect(list_text, want_rc, needles, *extra):
            """Runs the harness with this list; checks status and output."""
            if list_text is not None:
                with open(listing, "w") as f:
                    f.write(list_text)
            rc, out = run(harness, tmp, listing, *extra)
            check(rc == want_rc, f"exit {rc}, expected {want_rc}:\n{out}")
            for n in needles:
                check(n in out, f"{n!r} not in the output:\n{out}")

        # test_add_uint8 adds uint8 tensors: a type out of scope; Reshape's
        # int64 shape input is refused at run time, so it runs bound at load
        shape_listed = ""
        expect(
            "test_add_uint8 dtype uint8\n",
            0,
            ["passed 4 of 5 (80.0 %; 1 with inputs bound at load)"],
        )
        # listed as failing, it passes with its shape bound: the list is stale
        expect(
            "test_add_uint8 dtype uint8\n"
            "test_reshape_reduced_dims runtime shape as an input\n",
            1,
            ["STALE   test_reshape_reduced_dims passes but is listed"],
        )
        expect(
            "",
            1,
            ["FAIL    test_add_uint8: refused [dtype]: graph input 'x' is uint8"],
        )

        # the second input of Add is fed: altering it changes the sum
        in1 = os.path.join(data, "test_add", "test_data_set_0", "input_1.pb")
        with open(in1, "rb") as f:
            orig = f.read()
        with open(in1, "wb") as f:
            f.write(orig[:-1] + bytes([orig[-1] ^ 0x80]))
        expect(
            "test_add_uint8 dtype uint8\n" + shape_listed,
            1,
            ["FAIL    test_add: wrong [wrong]: output 0: 1 of 60 values off"],
        )
        with open(in1, "wb") as f:
            f.write(orig)

        # the last float of abs's expected output, negated
        out_pb = os.path.join(data, "test_abs", "test_data_set_0", "output_0.pb")
        with open(out_pb, "rb") as f:
            blob = bytearray(f.read())
        blob[-1] ^= 0x80
        with open(out_pb, "wb") as f:
            f.write(blob)
        expect(
            "test_add_uint8 dtype uint8\n" + shape_listed,
            1,
            ["FAIL    test_abs: wrong [wrong]: output 0: 1 of 60 values off"],
        )
        expect(
            "test_add_uint8 dtype uint8\ntest_abs wrong on purpose\n" + shape_listed,
            0,
            [],
        )

        # --update-list keeps the reason of an entry whose cause holds,
        # drops what passes, and adds new failures with the message
        expect(
            "test_abs wrong on purpose\ntest_relu wrong stale\n",
            0,
            ["rewrote"],
            "--update-list",
        )
        with open(listing) as f:
            text = f.read()
        check("test_abs" in text and "on purpose" in text, f"kept:\n{text}")
        check("test_relu" not in text, f"the passing entry is dropped:\n{text}")
        check(
            "test_add_uint8" in text and "'x' is uint8" in text,
            f"the new entry has the engine's message:\n{text}",
        )
        expect(None, 0, ["unexpected failures: 0"])

        # a truncated expected output is an error, not a pass
        with open(out_pb, "wb") as f:
            f.write(blob[:-3])
        expect(None, 1, ["STALE   test_abs is listed as wrong, now fails as data"])

        # a listed test that passes, or that does not exist, is stale
        shutil.rmtree(os.path.join(data, "test_abs"))
        expect(
            "test_add_uint8 dtype x\ntest_relu wrong x\ntest_nope wrong x\n"
            + shape_listed,
            1,
            [
                "STALE   test_relu passes but is listed",
                "STALE   test_nope is listed but is no counted test",
            ],
        )
    finally:
        shutil.rmtree(tmp)
    print("harness checks:", "ok" if FAILURES == 0 else f"{FAILURES} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
