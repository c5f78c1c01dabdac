#!/bin/sh
# Fetches the ONNX project's backend tests into DEST: DEST/node (one folder
# per op variant: model.onnx and test_data_set_*/{input,output}_N.pb) and
# the small networks of the same form, DEST/pytorch-converted,
# DEST/pytorch-operator and DEST/simple.
#
#   scripts/fetch-onnx-node-tests.sh DEST
#
# The tests ship inside the onnx wheel on PyPI; 1.22.0 is the newest wheel
# that still carries onnx/backend/test/data/node. pip downloads one pinned
# wheel (abi3, manylinux x86_64, whatever this machine is: only its data is
# used), its SHA-256 is checked, and only those folders of
# onnx/backend/test/data are unpacked. Nothing is installed. DEST is reused
# once complete, so the download happens once per build folder.
#
# Exit status: 0 when DEST is ready; 77 when the download is impossible
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

if [ -f "$dest/.complete-$version" ]; then
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

# Checks the hash and unpacks the suites into $tmp/data, refusing any
# member whose path would leave it.
"$python" - "$dest/$wheel" "$sha256" "$tmp/data" <<'EOF'
import hashlib, os, sys, zipfile

path, want, out = sys.argv[1:4]
with open(path, "rb") as f:
    got = hashlib.sha256(f.read()).hexdigest()
if got != want:
    os.remove(path)
    sys.exit(f"fetch-onnx-node-tests: {path}: SHA-256 {got}, expected {want}; removed")
prefix = "onnx/backend/test/data/"
suites = ("node", "pytorch-converted", "pytorch-operator", "simple")
n = 0
with zipfile.ZipFile(path) as z:
    for m in z.infolist():
        rel = m.filename[len(prefix):]
        if not m.filename.startswith(prefix) or m.is_dir():
            continue
        if rel.split("/")[0] not in suites:
            continue
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"fetch-onnx-node-tests: unsafe member {m.filename}")
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(m) as src, open(target, "wb") as dst:
            dst.write(src.read())
        n += 1
if not os.path.isdir(os.path.join(out, "node")):
    sys.exit(f"fetch-onnx-node-tests: {path} holds no {prefix}node files")
print(f"fetch-onnx-node-tests: {n} files of {prefix}{{{','.join(suites)}}}"
      f" from {os.path.basename(path)}")
EOF

# The networks of pytorch-converted, pytorch-operator and simple were saved
# at opsets 6 to 9, older than any the importer reads; the onnx package's
# own version converter brings each to opset 17 (the expected outputs stay
# PyTorch's). A model it cannot convert is left out, by name. Without the
# onnx package (scripts/install-deps.sh puts it in .venv) only node is kept,
# and DEST is unpacked again next time.
complete=1
if "$python" -c "import onnx" 2>/dev/null; then
  "$python" - "$tmp/data" <<'EOF'
import os, shutil, sys
import onnx
from onnx import version_converter

root = sys.argv[1]
kept, dropped = 0, []
for suite in ("pytorch-converted", "pytorch-operator", "simple"):
    for name in sorted(os.listdir(os.path.join(root, suite))):
        d = os.path.join(root, suite, name)
        path = os.path.join(d, "model.onnx")
        try:
            m = onnx.load(path)
            old = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
            c = version_converter.convert_version(m, 17)
            onnx.checker.check_model(c)
        except Exception as e:  # the converter raises many kinds
            dropped.append(f"{suite}/{name} ({type(e).__name__})")
            shutil.rmtree(d)
            continue
        onnx.save(c, path)
        with open(os.path.join(d, "converted.txt"), "w") as f:
            f.write(f"opset {old} -> 17 by onnx {onnx.__version__} version_converter\n")
        kept += 1
print(f"fetch-onnx-node-tests: {kept} networks converted to opset 17;"
      f" left out: {', '.join(dropped) or 'none'}")
EOF
else
  echo "fetch-onnx-node-tests: the onnx package is not importable by $python;" \
    "only the node tests are kept (pytorch-converted, pytorch-operator and simple" \
    "need its version converter)" >&2
  rm -rf "$tmp/data/pytorch-converted" "$tmp/data/pytorch-operator" "$tmp/data/simple"
  complete=0
fi

for suite in "$tmp"/data/*; do
  rm -rf "$dest/${suite##*/}"
  mv "$suite" "$dest/"
done
if [ "$complete" = 1 ]; then
  touch "$dest/.complete-$version"
fi
