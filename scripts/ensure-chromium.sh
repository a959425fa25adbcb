#!/usr/bin/env bash
# Installs Chromium and its WebDriver (chromedriver) if missing: the browser test
# (tests/tests/browser.rs) drives the web page in headless Chromium.
set -euo pipefail
. "$(dirname "$0")/lib/packages.sh"
if command -v chromedriver >/dev/null 2>&1 \
  && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  exit 0
fi
require_packages ensure-chromium "the browser test (headless Chromium and chromedriver)" \
  "--cask chromium chromedriver" "chromium chromedriver" chromium chromium-driver
