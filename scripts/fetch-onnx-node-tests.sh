#!/bin/sh
# Fetches the ONNX project's backend node tests into DEST/node (one folder per
# test: model.onnx and test_data_set_*/{input,output}_N.pb).
#
#   scripts/fetch-onnx-node-tests.sh DEST
#
# The tests ship inside the onnx wheel on PyPI; 1.22.0 is the newest wheel
# that still carries onnx/backend/test/data/node. pip downloads one pinned
# wheel (abi3, manylinux x86_64, whatever this machine is: only its data is
# used), its SHA-256 is checked, and only the node test data is unpacked.
# Nothing is installed. DEST/node is reused once complete, so the download
# happens once per build folder.
#
# Exit status: 0 when DEST/node is ready; 77 when the download is impossible
# (no pip, no network, no index), so that ctest reports a skip; 1 for
# anything else (a wheel that does not match its hash, a full disk).
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
dest=$1
version=1.22.0
wheel=onnx-1.22.0-cp312-abi3-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
sha256=955e02e1f6d385b53d52f9cd7b9cdf5caf417c300bcfe3c64c6d542be763845b

if [ -f "$dest/node/.complete-$version" ]; then
  exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
python=""
for p in "$root/.venv/bin/python" python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
    python=$p
    break
  fi
done
if [ -z "$python" ]; then
  echo "fetch-onnx-node-tests: no python with pip (scripts/install-deps.sh makes .venv);" \
    "cannot download onnx==$version" >&2
  exit 77
fi

mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ ! -f "$dest/$wheel" ]; then
  if ! "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.12 --implementation cp \
    --abi abi3 --dest "$tmp" "onnx==$version" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2
    echo "fetch-onnx-node-tests: pip could not download onnx==$version" \
      "(no network or no package index?)" >&2
    exit 77
  fi
  if [ ! -f "$tmp/$wheel" ]; then
    echo "fetch-onnx-node-tests: pip saved $(ls "$tmp" | tr '\n' ' ')but not $wheel" >&2
    exit 1
  fi
  mv "$tmp/$wheel" "$dest/$wheel"
fi

# Checks the hash and unpacks only onnx/backend/test/data/node/* into
# DEST/node, refusing any member whose path would leave it.
"$python" - "$dest/$wheel" "$sha256" "$tmp/node" <<'EOF'
import hashlib, os, sys, zipfile

path, want, out = sys.argv[1:4]
with open(path, "rb") as f:
    got = hashlib.sha256(f.read()).hexdigest()
if got != want:
    os.remove(path)
    sys.exit(f"fetch-onnx-node-tests: {path}: SHA-256 {got}, expected {want}; removed")
prefix = "onnx/backend/test/data/node/"
n = 0
with zipfile.ZipFile(path) as z:
    for m in z.infolist():
        if not m.filename.startswith(prefix) or m.is_dir():
            continue
        rel = m.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"fetch-onnx-node-tests: unsafe member {m.filename}")
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(m) as src, open(target, "wb") as dst:
            dst.write(src.read())
        n += 1
if n == 0:
    sys.exit(f"fetch-onnx-node-tests: {path} holds no {prefix} files")
print(f"fetch-onnx-node-tests: {n} files of {prefix} from {os.path.basename(path)}")
EOF

rm -rf "$dest/node"
mv "$tmp/node" "$dest/node"
touch "$dest/node/.complete-$version"
