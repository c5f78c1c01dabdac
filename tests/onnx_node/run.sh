#!/bin/sh
# The ONNX backend node tests against this build:
#
#   tests/onnx_node/run.sh BUILD_DIR [--update-list] [--verbose] [--only SUBSTR]
#                          [--report FILE.tsv]
#
# Fetches the tests into BUILD_DIR/onnx-node-tests once
# (scripts/fetch-onnx-node-tests.sh), then runs BUILD_DIR/tests/onnx_node_tests
# against tests/onnx_node/expected_failures.txt. Exits 77 (a skip for ctest)
# only when the tests cannot be downloaded.
set -u
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [onnx_node_tests options]" >&2
  exit 2
fi
build=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../scripts/fetch-onnx-node-tests.sh" "$build/onnx-node-tests"
rc=$?
if [ "$rc" -eq 77 ]; then
  echo "onnx_node: SKIPPED: the ONNX node tests could not be downloaded (above)"
fi
if [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
exec "$build/tests/onnx_node_tests" --data "$build/onnx-node-tests" \
  --list "$here/expected_failures.txt" "$@"
