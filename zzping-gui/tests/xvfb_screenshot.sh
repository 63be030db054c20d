#!/usr/bin/env bash
# Screenshot test of the real window under Xvfb.
#
# Builds zzping-gui, starts Xvfb on a free display, runs the viewer on a generated data
# set (three hosts, two hours, a 300 ms outage and a gap) with --screenshot, and checks
# that the PNG exists, is 1600x900 and is not blank (many colours, mostly dark).
#
# Usage: zzping-gui/tests/xvfb_screenshot.sh [OUT.png]
# Needs: Xvfb (Debian: xvfb xauth libxkbcommon-x11-0 libx11-6 libxcursor1 libxrandr2 libxi6),
# python3 for the pixel check. Prints "1 passed, 0 failed" or "0 passed, 1 failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

out="${1:-}"
work="$(mktemp -d)"
xvfb_pid=""
cleanup() {
    if [[ -n "$xvfb_pid" ]]; then kill "$xvfb_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "xvfb_screenshot: FAIL: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

command -v Xvfb >/dev/null || fail "Xvfb not installed (apt-get install xvfb)"
cargo build -q -p zzping-gui --bin zzping-gui
bin="${CARGO_TARGET_DIR:-target}/debug/zzping-gui"

# A free display number.
disp=""
for n in $(seq 90 140); do
    if [[ ! -e "/tmp/.X${n}-lock" && ! -e "/tmp/.X11-unix/X${n}" ]]; then disp=":$n"; break; fi
done
[[ -n "$disp" ]] || fail "no free X display"
Xvfb "$disp" -screen 0 1920x1080x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do
    [[ -e "/tmp/.X11-unix/X${disp#:}" ]] && break
    sleep 0.1
done
kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work/xvfb.log")"

shot="$work/shot.png"
if ! DISPLAY="$disp" timeout 120 "$bin" --demo-data "$work/data" --demo-hours 2 \
    --screenshot "$shot" --exit-after-ms 4000 --width 1600 --height 900 >"$work/gui.log" 2>&1; then
    cat "$work/gui.log" >&2
    fail "zzping-gui exited with an error"
fi
[[ -s "$shot" ]] || { cat "$work/gui.log" >&2; fail "no screenshot written"; }

python3 - "$shot" <<'PY' || fail "screenshot check failed"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", None
while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4]); kind = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
assert (w, h) == (1600, 900), f"size {w}x{h}, expected 1600x900"
assert (depth, ctype) == (8, 6), "expected 8-bit RGBA"
raw = zlib.decompress(idat)
stride = w * 4
rows, prev = [], bytearray(stride)
i = 0
for _ in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - 4] if x >= 4 else 0; b = prev[x]; c = prev[x - 4] if x >= 4 else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
colours, dark, red, n = set(), 0, 0, 0
for y in range(0, h, 4):
    r = rows[y]
    for x in range(0, w, 4):
        p = r[x * 4:x * 4 + 3]; colours.add(p); n += 1
        dark += sum(p) < 200
        red += p[0] > 200 and p[1] < 90 and p[2] < 90
print(f"xvfb_screenshot: {w}x{h}, {len(colours)} colours, {dark * 100 // n}% dark, {red} red samples")
assert len(colours) > 100, "looks blank"
assert dark * 2 > n, "not a dark window"
assert red > 0, "no loss marks drawn"
PY
if [[ -n "$out" ]]; then cp "$shot" "$out"; echo "xvfb_screenshot: copied to $out"; fi
echo "xvfb_screenshot: ok"
echo "1 passed, 0 failed"
