#!/usr/bin/env bash
# Installs the Debian packages the server, its tests and benchmarks need,
# only when something is missing. Go modules come through `go mod download`.
set -euo pipefail

# nginx balances the two-replica test (cmd/tileserver); yamllint checks the
# Kubernetes and compose files.
pkgs=(pkg-config gcc libvips-dev libturbojpeg0-dev libjpeg62-turbo-dev libvips-tools libopenslide-dev openslide-tools libtiff-tools libgs-common memcached curl chromium nginx yamllint)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm build the viewer page; a machine may have them from
# elsewhere than Debian, which is fine.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	sudo_cmd=""
	[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then export PATH=$PATH:/usr/local/go/bin; else
		echo "Go is required (https://go.dev/dl); Debian's golang package is too old" >&2; exit 1
	fi
fi
# Orthanc serves DICOMweb to the DICOM tests (their own process, not the
# system service).
"$(dirname "$0")/orthanc-test-env.sh" >/dev/null
go mod download
# SeaweedFS serves S3 to the object storage tests (tilesource/objstore).
"$(dirname "$0")/seaweedfs-test-env.sh" >/dev/null
