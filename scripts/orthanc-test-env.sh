#!/usr/bin/env bash
# Installs Orthanc and its DICOMweb plugin (Debian packages) for the DICOMweb
# tests in tilesource/dicom/dicomweb, if they are missing. The tests start
# their own Orthanc process with a private configuration; the system
# service is not used (and not started: policy-rc.d or no init is fine).
set -euo pipefail

have() {
	command -v Orthanc >/dev/null 2>&1 &&
		{ [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || ls /usr/lib/orthanc/libOrthancDicomWeb.so* >/dev/null 2>&1; }
}

if have; then
	echo "orthanc-test-env: Orthanc and orthanc-dicomweb present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb >/dev/null
# The package starts its own service where an init system runs; the tests
# do not need it.
$SUDO service orthanc stop >/dev/null 2>&1 || true
have
echo "orthanc-test-env: installed Orthanc and orthanc-dicomweb"
