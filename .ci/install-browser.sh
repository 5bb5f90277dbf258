#!/bin/sh
# Install Debian's Chromium for the browser tests (tests/e2e). Idempotent:
# does nothing when /usr/bin/chromium is already there. Needs root (CI runs
# as root); elsewhere run it with sudo. Playwright drives this Chromium
# through executable_path, so `playwright install` (a browser download) is
# never needed.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
/usr/bin/chromium --version
