#!/usr/bin/env bash
# Screenshot test of the real window under Xvfb.
#
# Builds zzping-gui (and zzping, to read the data back), starts Xvfb on a free display and
# runs the viewer on a generated data set (three hosts over two hours: `router` with a
# gap from 60 % to 65 % of the range, `wifi-ap` losing 300 ms every 30 s, `internet` with
# one 300 ms outage at 40 %; see zzping-gui/src/demo.rs) with --screenshot. The viewer
# takes the screenshot once it has drawn its first picture with all the data, and logs
# `drawn: first picture with all data; view T0..T1 us; lane NAME x X0..X1 y Y0..Y1; ...`.
#
# The picture is then checked against the data itself, read back with `zzping export`:
# - the three lanes sit where the layout puts them (stacked, equal heights, plot from
#   the legend to the right padding);
# - each lane is grey (`GAP`, canvas.rs) exactly over the columns where its host has no
#   frame, and only there;
# - each lane shows a red loss mark (`LOSS`) at its top in every column holding a lost
#   request, and no red where there was no loss nearby.
# Columns are mapped to time the way the viewer does (pixel x of a lane covers
# [T0 + x/w (T1 - T0), T0 + (x+1)/w (T1 - T0)) ), frames binned by their 1 s summaries;
# a column within one pixel (or one summary) of a change is not judged.
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
cargo build -q -p zzping-gui --bin zzping-gui -p zzping --bin zzping
bin="${CARGO_TARGET_DIR:-target}/debug/zzping-gui"
zzping="${CARGO_TARGET_DIR:-target}/debug/zzping"

# A free display number.
disp=""
for n in $(seq 90 140); do
    if [[ ! -e "/tmp/.X${n}-lock" && ! -e "/tmp/.X11-unix/X${n}" ]]; then disp=":$n"; break; fi
done
[[ -n "$disp" ]] || fail "no free X display"
Xvfb "$disp" -screen 0 1920x1080x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
# Xvfb creates its socket when it is ready: wait for that (bounded).
for _ in $(seq 100); do
    [[ -e "/tmp/.X11-unix/X${disp#:}" ]] && break
    sleep 0.1
done
kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work/xvfb.log")"

# --exit-after-ms is only a deadline here: the screenshot is taken when the viewer has
# drawn all the data (the "drawn:" line), however long loading takes on this machine.
shot="$work/shot.png"
if ! DISPLAY="$disp" timeout 300 "$bin" --demo-data "$work/data" --demo-hours 2 \
    --screenshot "$shot" --exit-after-ms 240000 --width 1600 --height 900 >"$work/gui.log" 2>&1; then
    cat "$work/gui.log" >&2
    fail "zzping-gui exited with an error"
fi
[[ -s "$shot" ]] || { cat "$work/gui.log" >&2; fail "no screenshot written"; }
if [[ -n "$out" ]]; then cp "$shot" "$out"; echo "xvfb_screenshot: copied to $out"; fi
drawn="$(grep -o 'drawn: first picture with all data.*' "$work/gui.log" | head -1)"
[[ -n "$drawn" ]] || { cat "$work/gui.log" >&2; fail "the viewer never said it drew its data"; }
"$zzping" export --format csv "$work/data" >"$work/frames.csv" || fail "zzping export failed"

python3 - "$shot" "$drawn" "$work/frames.csv" <<'PY' || fail "screenshot check failed"
import csv, re, struct, sys, zlib

shot, drawn, frames_csv = sys.argv[1:4]

# --- The PNG, decoded by hand (no imaging library on a fresh machine).
data = open(shot, "rb").read()
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

def px(x, y):
    r = rows[y]
    return tuple(r[x * 4:x * 4 + 3])

def near(p, c, tol):
    return all(abs(p[k] - c[k]) <= tol for k in range(3))

# Colours of canvas.rs (`GAP`, `LOSS`), as 8-bit RGB.
GAP = tuple(round(v * 255) for v in (0.24, 0.25, 0.28))
LOSS = tuple(round(v * 255) for v in (0.93, 0.20, 0.22))

# --- Where the viewer drew: its "drawn:" line.
m = re.search(r"view (\d+)\.\.(\d+) us", drawn)
assert m, f"no view range in: {drawn}"
t0, t1 = int(m.group(1)), int(m.group(2))
lanes = {
    name: (int(x0), int(x1), int(y0), int(y1))
    for name, x0, x1, y0, y1 in re.findall(r"lane (\S+) x (\d+)\.\.(\d+) y (\d+)\.\.(\d+)", drawn)
}
assert sorted(lanes) == ["internet", "router", "wifi-ap"], f"lanes: {sorted(lanes)}"

# The known layout (window.rs `view`): 10 px padding, a 230 px legend and the 56 px Y
# axis on the left, lanes stacked top to bottom with 4 px between them, sharing the height.
order = sorted(lanes.values(), key=lambda r: r[2])
for (x0, x1, y0, y1) in order:
    assert abs(x0 - (10 + 230 + 56)) <= 1 and abs(x1 - (1600 - 10)) <= 1, f"lane x {x0}..{x1}"
heights = [y1 - y0 for (_, _, y0, y1) in order]
assert max(heights) - min(heights) <= 1 and min(heights) > 100, f"lane heights {heights}"
for a, b in zip(order, order[1:]):
    assert 0 <= b[2] - a[3] <= 6, f"lanes not stacked: {a} then {b}"

# --- The data, read back.
frames = {}
with open(frames_csv) as f:
    for r in csv.DictReader(f):
        frames.setdefault(r["host"], []).append(
            (int(r["start_us"]), int(r["period_us"]), int(r["lost"]), int(r["received"])))
assert sorted(frames) == sorted(lanes), f"hosts in the data: {sorted(frames)}"

checked = {"gap": 0, "no gap": 0, "loss": 0, "no loss": 0}
failures = []
for name, (x0, x1, y0, y1) in lanes.items():
    fs = frames[name]
    pw = x1 - x0
    span = (t1 - t0) / pw
    # Per pixel column: whether frames start in it, and lost requests in it. The viewer
    # bins frames by summaries of its pyramid (the finest is 1 s, docs/architecture.md),
    # so a frame within 1 s of a column's edge may be drawn in the neighbour: such
    # frames mark both columns "maybe" and the test judges neither on them.
    SUMMARY_US = 1_000_000
    has_frame = [False] * pw
    lost = [0] * pw
    maybe_lost = [False] * pw
    for (s, p, l, _) in fs:
        x = int((s - t0) // span)
        if not 0 <= x < pw:
            continue
        has_frame[x] = True
        if l == 0:
            continue
        lo, hi = t0 + x * span, t0 + (x + 1) * span
        if s - SUMMARY_US >= lo and s + SUMMARY_US < hi:
            lost[x] += l
        else:
            for k in (x - 1, x, x + 1):
                if 0 <= k < pw:
                    maybe_lost[k] = True
    for x in range(1, pw - 1):
        X = x0 + x
        # Judge only where the neighbours agree (a column on an edge may go either way).
        if has_frame[x - 1] == has_frame[x] == has_frame[x + 1]:
            grey = sum(near(px(X, y), GAP, 10) for y in range(y0 + 2, y1 - 2, 5))
            total = len(range(y0 + 2, y1 - 2, 5))
            # (Grid lines cross the gap: most, not all, of the samples are grey.)
            if not has_frame[x]:
                checked["gap"] += 1
                if grey < total * 0.7:
                    failures.append(f"{name}: column {X} has no frame but is not grey ({grey}/{total})")
            else:
                checked["no gap"] += 1
                if grey > total * 0.3:
                    failures.append(f"{name}: column {X} has frames but is grey ({grey}/{total})")
        # Loss marks hang from the lane's top; an outage's cap spreads one column aside.
        top = [px(X, y) for y in range(y0 + 1, y0 + 3)]
        red = any(near(p, LOSS, 40) for p in top)
        if lost[x] > 0:
            checked["loss"] += 1
            if not red:
                failures.append(f"{name}: column {X} lost {lost[x]} requests but shows no red: {top}")
        elif not any(lost[k] or maybe_lost[k] for k in range(x - 1, x + 2)):
            checked["no loss"] += 1
            if red:
                failures.append(f"{name}: column {X} lost nothing but shows red: {top}")

print(f"xvfb_screenshot: {w}x{h}; view {t0}..{t1}; lanes {lanes}; columns checked {checked}")
for k in ("gap", "no gap", "loss", "no loss"):
    assert checked[k] > 0, f"no column of kind {k!r} was checked: the data set lacks what this test is for"
assert not failures, f"{len(failures)} wrong columns:\n" + "\n".join(failures[:20])
PY
echo "xvfb_screenshot: ok"
echo "1 passed, 0 failed"
