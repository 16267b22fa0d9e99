#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (an Apache-2.0 S3-compatible server) into
# $(go env GOPATH)/bin for the object storage tests, if it is missing. It
# comes through the Go module proxy at a pinned version; `go install
# module@version` refuses it (its go.mod has replace directives), so it is
# built inside the downloaded module. The build takes several minutes once;
# afterwards the binary is reused.
set -euo pipefail

module=github.com/seaweedfs/seaweedfs
version=v0.0.0-20261109003541-7506e5f91cd6
bin="$(go env GOPATH)/bin/weed"

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	echo "seaweedfs-test-env: $bin present"
	exit 0
fi
dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "seaweedfs-test-env: cannot download $module@$version" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
echo "seaweedfs-test-env: building weed (a few minutes)"
(cd "$dir" && go build -trimpath -o "$bin.tmp" ./weed)
mv "$bin.tmp" "$bin"
echo "seaweedfs-test-env: built $bin"
