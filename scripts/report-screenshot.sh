#!/usr/bin/env bash
# Render a run's report.html in a real browser (headless Chromium) to a PNG, to look at the page
# as a user will: every picture embedded, nothing fetched.
#   scripts/report-screenshot.sh RUN_DIR [OUT.png] [HEIGHT]
# OUT defaults to RUN_DIR/report.png, HEIGHT (pixels, the page is cut there) to 3000. Needs
# Debian's `chromium` (apt-get install chromium) or CHROMIUM naming another Chromium binary.
set -euo pipefail
run_dir=${1:?usage: scripts/report-screenshot.sh RUN_DIR [OUT.png] [HEIGHT]}
out=${2:-$run_dir/report.png}
height=${3:-3000}
page=$(realpath "$run_dir/report.html")
browser=${CHROMIUM:-chromium}
if ! command -v "$browser" >/dev/null; then
    echo "report-screenshot: $browser not found; install it (apt-get install chromium) or set CHROMIUM" >&2
    exit 1
fi
# --no-sandbox: Chromium's sandbox refuses to start as root, as in containers and CI.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1100,$height" \
    --screenshot="$out" "file://$page" 2>/dev/null
echo "report-screenshot: $out"
