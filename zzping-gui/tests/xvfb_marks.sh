#!/usr/bin/env bash
# Context-event marks in the real window under Xvfb, hovered with xdotool.
#
# The viewer opens its demo data set (`--demo-data`: three hosts over an hour, and the
# context events of zzping-gui/src/demo.rs: the daemon's start, the default route moving
# to 192.0.2.254 on wlan1 at 20 % of the range). Once it logs its first picture with all
# the data (`drawn: ...; view T0..T1 us; lane NAME x X0..X1 y Y0..Y1`), the route change
# is read back with `zzping export --events` and:
# - a grab of the window shows the route mark's colour (`ROUTE_MARK`, marks.rs) in the
#   events strip under the lanes at the column of its time, and not 40 px beside it;
# - the mouse moved over the lanes at that column makes the viewer read the event out:
#   it logs `hover: events default route via 192.0.2.254 on wlan1 · at ...`.
#
# Usage: zzping-gui/tests/xvfb_marks.sh [OUT.png]   (OUT.png: keep the grab)
# Needs: Xvfb, xdotool, python3. Prints "1 passed, 0 failed" or "0 passed, 1 failed".
# Bounded: every wait has a deadline, the viewer quits after 150 s at the latest.
set -euo pipefail
cd "$(dirname "$0")/../.."

out="${1:-}"
work="$(mktemp -d)"
xvfb_pid=""
gui_pid=""
cleanup() {
    if [[ -n "$gui_pid" ]]; then kill "$gui_pid" 2>/dev/null || true; wait "$gui_pid" 2>/dev/null || true; fi
    if [[ -n "$xvfb_pid" ]]; then kill "$xvfb_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "xvfb_marks: FAIL: $*" >&2
    if [[ -f "$work/gui.log" ]]; then tail -20 "$work/gui.log" >&2; fi
    echo "0 passed, 1 failed"
    exit 1
}

for tool in Xvfb xdotool python3; do
    command -v "$tool" >/dev/null || fail "$tool not installed (see .ci/install-deps)"
done
cargo build -q -p zzping-gui --bin zzping-gui -p zzping --bin zzping
gui="${CARGO_TARGET_DIR:-target}/debug/zzping-gui"
zzping="${CARGO_TARGET_DIR:-target}/debug/zzping"

disp=""
for n in $(seq 200 249); do
    if [[ ! -e "/tmp/.X${n}-lock" && ! -e "/tmp/.X11-unix/X${n}" ]]; then disp=":$n"; break; fi
done
[[ -n "$disp" ]] || fail "no free X display"
Xvfb "$disp" -screen 0 1600x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do
    [[ -e "/tmp/.X11-unix/X${disp#:}" ]] && break
    sleep 0.1
done
kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work/xvfb.log")"
export DISPLAY="$disp"

RUST_LOG=zzping_gui=info "$gui" --config none --demo-data "$work/data" --demo-hours 1 \
    --width 1600 --height 900 --exit-after-ms 150000 >"$work/gui.log" 2>&1 &
gui_pid=$!

# Waits (bounded, LIMIT seconds) for a log line matching PATTERN; sets $line to it.
line=""
wait_log() {
    local pattern="$1" limit="$2" t=0
    while (( t < limit * 10 )); do
        line="$(grep -F -- "$pattern" "$work/gui.log" | head -1 || true)"
        [[ -n "$line" ]] && return 0
        kill -0 "$gui_pid" 2>/dev/null || fail "the viewer exited while waiting for '$pattern'"
        sleep 0.1; t=$((t + 1))
    done
    fail "no '$pattern' within ${limit}s"
}

wait_log "drawn: first picture with all data" 120
drawn="$line"
wid="$(timeout 30 xdotool search --sync --name '^zzping' | head -1)" || fail "no viewer window"
xdotool windowmove --sync "$wid" 0 0 2>/dev/null || true
"$zzping" export --events --format csv "$work/data" >"$work/events.csv" \
    || fail "zzping export --events failed"
grep -q route_change "$work/events.csv" || fail "no route_change in the demo's events: $(cat "$work/events.csv")"

# The column of the route change, and a point over the first lane there.
read -r x y y_below < <(python3 - "$drawn" "$work/events.csv" <<'PY'
import csv, re, sys
drawn, events = sys.argv[1:3]
t0, t1 = map(int, re.search(r"view (\d+)\.\.(\d+) us", drawn).groups())
lanes = [tuple(map(int, m)) for m in re.findall(r"lane \S+ x (\d+)\.\.(\d+) y (\d+)\.\.(\d+)", drawn)]
assert lanes, drawn
t = next(int(r["t_us"]) for r in csv.DictReader(open(events)) if r["kind"] == "route_change")
x0, x1, y0, y1 = lanes[0]
x = x0 + (t - t0) / (t1 - t0) * (x1 - x0)
print(f"xvfb_marks: route change at {t} us; view {t0}..{t1}; lane x {x0}..{x1}: x {x:.1f}", file=sys.stderr)
print(round(x), y0 + (y1 - y0) // 2, max(l[3] for l in lanes))
PY
) || fail "no route change in view"

python3 zzping-gui/tests/xvfb/grab.py "$disp" "$work/window.png"
if [[ -n "$out" ]]; then cp "$work/window.png" "$out"; fi
python3 - "$work/window.png" "$x" "$y_below" <<'PY' || fail "the route mark is not where its time is"
import os, sys
sys.path.insert(0, os.path.join("zzping-gui", "tests", "xvfb"))
import pixels
img = pixels.read_png(sys.argv[1])
x, below = int(sys.argv[2]), int(sys.argv[3])
ROUTE = tuple(round(v * 255) for v in (0.35, 0.75, 0.95))  # marks.rs ROUTE_MARK

def hits(col):
    return [y for y in range(below, min(below + 60, img.h)) if pixels.near(img.px(col, y), ROUTE, 12)]

at = [y for dx in (-1, 0, 1) for y in hits(x + dx)]
assert at, f"no route mark colour under the lanes at x {x} (rows {below}..{below + 60})"
for dx in (-40, 40):
    assert not hits(x + dx), f"route mark colour at x {x + dx}, 40 px from the event"
print(f"xvfb_marks: route mark at x {x}, rows {min(at)}..{max(at)}")
PY

# Hover the first lane at the event's column: the viewer reads the event out.
xdotool mousemove "$x" "$y"
sleep 0.3
xdotool mousemove "$((x + 1))" "$y"
wait_log "hover: events default route via 192.0.2.254 on wlan1" 10
echo "xvfb_marks: hover: ${line#*hover: }"
echo "xvfb_marks: ok"
echo "1 passed, 0 failed"
