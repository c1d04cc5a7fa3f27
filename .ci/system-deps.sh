#!/bin/sh
# Installs the Debian packages the test-suite needs, when they are missing:
# chromium (driven by Playwright for the web-UI test; no browser download) and
# certutil from libnss3-tools (to trust the test manufacturer root in a
# throw-away NSS database instead of ignoring certificate errors), node and
# npm (secvisogram's CSAF validator, installed by `make nodedeps`), gpg
# (security.txt signed through python-gnupg); curl and openssl, which the
# documents' runnable blocks use (tests/docs/); Noto CJK fonts for the Korean
# web UI in chromium; ffmpeg/ffprobe, the RTSPS clients; nginx, which serves the
# repository with docs/UPDATES.md's configuration (tests/update_server/test_nginx.py);
# gcc and libssl-dev, which build ONVIF's Media Signing reference for the interop test.
set -e
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium fonts-dejavu-core"
command -v certutil >/dev/null 2>&1 || missing="$missing libnss3-tools"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v gpg >/dev/null 2>&1 || missing="$missing gnupg"  # OpenPGP-signed security.txt
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
# Hangul for the Korean web UI in chromium (screenshots, clipped-text checks)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing="$missing fonts-noto-cjk"
command -v ffprobe >/dev/null 2>&1 || missing="$missing ffmpeg"  # real RTSPS clients (tests/device/test_rtsp_*.py)
[ -x /usr/sbin/nginx ] || missing="$missing nginx-light"  # the docs' static-repository server
# ONVIF's reference Media Signing code, built by tests/device/test_media_signing_interop.py
command -v gcc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
[ -e /usr/include/openssl/evp.h ] || missing="$missing libssl-dev"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing Debian packages:$missing (install them as root)" >&2
    exit 1
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Install services without starting them (nginx's package would listen on every
# interface); the tests start nginx themselves, on loopback only.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
