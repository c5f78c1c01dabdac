"""A failed write is a failed run: every output of `replay` and `infer`
(signals, feature rows, rejected rows, the JSON summary, the engine state,
.npy arrays) that cannot be written ends the command with exit status 1 and
a message that names the output, its path and the system's reason.

Three ways an output fails:
  - a device that refuses every write, as /dev/full does. As root the node
    is made with mknod in a temporary folder, so that a writer that renames
    over its path replaces our node and never the system's /dev/full; other
    users get /dev/full itself (they cannot rename over it);
  - a read-only folder: a read-only tmpfs mount as root (permissions do not
    stop root), a folder without write permission otherwise;
  - a full disk: a 64 KiB tmpfs filled to its last byte. A state file
    written before the disk filled must survive the failed rewrite whole;
    and a 512 KiB tmpfs that feature rows outgrow part way through, on the
    one-thread path and on split engines writing through a mapping.
Mounting needs root (CAP_SYS_ADMIN): where it is refused, those parts are
skipped with a message, and the test exits 77 when nothing could run.

Usage: python3 tests/test_cli_outputs.py ENGINE   (standard library only)
"""
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile

from npyfile import write_npy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENGINE = os.path.abspath(sys.argv[1])
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
BAD_ROWS = os.path.join(HERE, "bad_input", "bad_rows.csv")
TMP = tempfile.mkdtemp(prefix="pe-outputs-")
IS_ROOT = os.geteuid() == 0
ENOSPC = os.strerror(errno.ENOSPC)
EROFS = os.strerror(errno.EROFS)
EACCES = os.strerror(errno.EACCES)
failures = []
ran = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def skip(what):
    print("SKIP:", what)


def run(*args, stdout=subprocess.PIPE):
    p = subprocess.run([ENGINE, *args], stdout=stdout, stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def has_infer():
    return run("help", "infer")[0] == 0


# Each output of replay: its flag and the word its message uses. Rejected
# rows come from the bad-row corpus, so that there are rows to write.
REPLAY_OUTPUTS = [
    ("--out", "signals", FIXTURE),
    ("--features-out", "features", FIXTURE),
    ("--rejects", "rejected rows", BAD_ROWS),
    ("--summary-json", "summary", FIXTURE),
    ("--state-out", "state", FIXTURE),
]


def replay_to(flag, path, ticks):
    args = ["replay", "--ticks", ticks, "--quiet", flag, path]
    if flag != "--out":
        args += ["--out", os.devnull]
    return run(*args)


def infer_to(path):
    x = os.path.join(TMP, "x.npy")
    write_npy(x, (2, 32), [0.5] * 64)
    return run("infer", "none", "--backend", "stub", "--input", x,
               "--output", path)


def expect_failure(rc, err, what, path, reason):
    check(rc == 1, f"{what}: exit status 1, got {rc} ({err.strip()})")
    check("cannot" in err and path in err,
          f"{what}: the message names the path {path}: {err.strip()!r}")
    check(reason in err,
          f"{what}: the message gives the reason '{reason}': {err.strip()!r}")


# ---- a device that refuses every write ---------------------------------------

def full_device():
    if not IS_ROOT:
        return "/dev/full" if os.path.exists("/dev/full") else None
    node = os.path.join(TMP, "full")
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except OSError as e:
        skip(f"cannot make a full device node ({e}); device cases left out")
        return None
    return node


def test_full_device():
    node = full_device()
    if node is None:
        return
    ran.append("device")
    for flag, what, ticks in REPLAY_OUTPUTS:
        rc, err = replay_to(flag, node, ticks)
        expect_failure(rc, err, f"replay {flag} {node}", node, ENOSPC)
        check(stat.S_ISCHR(os.stat(node).st_mode),
              f"replay {flag}: {node} is still a device, not replaced")
    # Signals to standard output, which is the device.
    with open(node, "wb") as full:
        rc, err = run("replay", "--ticks", FIXTURE, "--quiet", stdout=full)
    expect_failure(rc, err, "replay > full device", "-", ENOSPC)
    if has_infer():
        rc, err = infer_to(node)
        expect_failure(rc, err, f"infer --output {node}", node, ENOSPC)
        check(stat.S_ISCHR(os.stat(node).st_mode),
              f"infer: {node} is still a device, not replaced")


# ---- mounts --------------------------------------------------------------------

def mount_tmpfs(path, options):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                       capture_output=True)
    if p.returncode != 0:
        skip(f"mount -t tmpfs -o {options} refused "
             f"({p.stderr.decode().strip()})")
        return False
    return True


def umount(path):
    subprocess.run(["umount", path], capture_output=True)


def test_read_only_folder():
    ro = os.path.join(TMP, "ro")
    if IS_ROOT:
        if not mount_tmpfs(ro, "ro,size=64k"):
            skip("read-only folder cases left out")
            return
        reason = EROFS
    else:
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        reason = EACCES
    ran.append("read-only")
    try:
        for flag, what, ticks in REPLAY_OUTPUTS:
            path = os.path.join(ro, "out")
            rc, err = replay_to(flag, path, ticks)
            expect_failure(rc, err, f"replay {flag} in a read-only folder",
                           path, reason)
        if has_infer():
            path = os.path.join(ro, "y.npy")
            rc, err = infer_to(path)
            expect_failure(rc, err, "infer --output in a read-only folder",
                           path, reason)
    finally:
        if IS_ROOT:
            umount(ro)


def fill(folder):
    """Writes a file until the file system is full."""
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        chunk = b"x" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        while True:  # the last page's worth, a byte at a time
            try:
                f.write(b"x")
            except OSError:
                break


def test_full_disk():
    disk = os.path.join(TMP, "disk")
    if not mount_tmpfs(disk, "size=64k"):
        skip("full disk cases left out")
        return
    ran.append("full disk")
    try:
        state = os.path.join(disk, "state.bin")
        rc, err = replay_to("--state-out", state, FIXTURE)
        check(rc == 0, f"a state that fits is written ({err.strip()})")
        before = open(state, "rb").read()
        fill(disk)
        for flag, what, ticks in REPLAY_OUTPUTS:
            path = state if flag == "--state-out" else os.path.join(disk, "out")
            rc, err = replay_to(flag, path, ticks)
            expect_failure(rc, err, f"replay {flag} on a full disk", path,
                           ENOSPC)
        check(open(state, "rb").read() == before,
              "the state written before the disk filled is intact")
        check(not os.path.exists(state + ".tmp"),
              "no temporary state file is left behind")
        if has_infer():
            path = os.path.join(disk, "y.npy")
            rc, err = infer_to(path)
            expect_failure(rc, err, "infer --output on a full disk", path,
                           ENOSPC)
            check(not os.path.exists(path) and not os.path.exists(path + ".tmp"),
                  "infer leaves no partial .npy behind")
    finally:
        umount(disk)


def write_ticks(path, n, symbols):
    """n ticks over `symbols` symbols, in time order: enough feature rows
    to outgrow a small disk."""
    with open(path, "w") as f:
        f.write("ts,symbol,price,volume\n")
        for i in range(n):
            f.write(f"{1700000000000000000 + i * 1000},S{i % symbols},"
                    f"{100 + (i % 97) * 0.25},{1 + i % 7}\n")


def test_disk_filling_up():
    """Feature rows that outgrow the disk part way through, on the
    one-thread path (write(2)) and on split engines (a mapped file, where
    the kernel refuses a page with SIGBUS): exit 1, the path and the reason
    named, nothing left behind."""
    disk = os.path.join(TMP, "small")
    if not mount_tmpfs(disk, "size=512k"):
        skip("disk filling up cases left out")
        return
    ran.append("disk filling up")
    ticks = os.path.join(TMP, "ticks.csv")
    write_ticks(ticks, 20000, 40)  # about 5 MB of CSV rows, 3 MB of .npy
    try:
        for ext in ("csv", "npy"):
            for threads in ("0", "2"):
                path = os.path.join(disk, "f." + ext)
                rc, err = run("replay", "--ticks", ticks, "--quiet", "--out",
                              os.devnull, "--features-out", path,
                              "--features-threads", threads)
                what = f"--features-out .{ext}, --features-threads {threads}"
                check(rc == 1, f"{what}: exit status 1, got {rc} ({err.strip()})")
                check("cannot" in err and path in err,
                      f"{what}: the message names the path: {err.strip()!r}")
                check(ENOSPC in err or "no space" in err,
                      f"{what}: the message says the disk is full: {err.strip()!r}")
                left = os.listdir(disk)
                check(left == [], f"{what}: nothing left behind, found {left}")
    finally:
        umount(disk)


def main():
    try:
        test_full_device()
        test_read_only_folder()
        test_full_disk()
        test_disk_filling_up()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    if not ran:
        print("nothing could run here: skipped")
        return 77
    print("ok:", ", ".join(ran))
    return 0


if __name__ == "__main__":
    sys.exit(main())
