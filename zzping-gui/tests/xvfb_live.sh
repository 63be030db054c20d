#!/usr/bin/env bash
# The live window as a user drives it: a real daemon in the simulator, the real viewer
# under Xvfb, the mouse and keyboard through xdotool.
#
# zzping-netsim runs tests/scenarios/demo.toml (a Wi-Fi router, a silent printer, a
# laptop answered only by ICMP "unreachable") in a network namespace; inside it
# zzping-daemon pings three of its hosts at 50/s and serves its live stream on
# 127.0.0.1:7878 with a shared secret; 15 s later zzping-gui opens with
# `--live 127.0.0.1 --secret-file` (the name form and the default port) and a 60 s
# prefill. xdotool then presses the viewer's buttons and keys, and each action is
# checked against the `state:` line the viewer logs after it and, for pictures, against
# the pixels:
# - the first picture fits the data received (no 5-minute span of grey), is drawn from
#   raw frames, and shows the unreachable laptop and the silent printer red over their
#   whole height (errors in the errors' red, timeouts in the timeouts' red), the router
#   with bands and little red: both in a grab of the real window and in the picture
#   "Save PNG" writes;
# - End follows the newest data from raw frames; "1 h" and "5 min" set the span;
#   "go to" with `-20s` moves the view there and stops following;
# - "hide" removes a lane from the window and from the saved picture;
# - following again, a second saved picture ends later than the first, at the time it
#   was taken.
#
# Usage: zzping-gui/tests/xvfb_live.sh [OUT_DIR]   (OUT_DIR: keep the pictures)
# Needs: root (network namespaces), Xvfb, xdotool, python3, iproute2. Prints
# "1 passed, 0 failed" or "0 passed, 1 failed". Bounded: at most 120 s of simulation,
# every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."

keep="${1:-}"
work="$(mktemp -d)"
xvfb_pid=""
sim_pid=""
cleanup() {
    if [[ -n "$sim_pid" ]]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
    if [[ -n "$xvfb_pid" ]]; then kill "$xvfb_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "xvfb_live: FAIL: $*" >&2
    if [[ -f "$work/sim.log" ]]; then tail -40 "$work/sim.log" >&2; fi
    echo "0 passed, 1 failed"
    exit 1
}

ci() { [[ "${CI:-}" =~ ^(1|true|True|TRUE|yes)$ ]]; }
if [[ "$(id -u)" != 0 ]]; then
    if ci; then fail "needs root for network namespaces (CI must run as root)"; fi
    echo "xvfb_live: skipped: needs root for network namespaces"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
for tool in Xvfb xdotool python3 ip; do
    command -v "$tool" >/dev/null || fail "$tool not installed (see .ci/install-deps)"
done

cargo build -q -p zzping-gui --bin zzping-gui -p zzping-daemon --bin zzping-daemon \
    -p zzping-netsim --bin zzping-netsim
tdir="${CARGO_TARGET_DIR:-target}/debug"
gui="$(realpath "$tdir/zzping-gui")"
daemon="$(realpath "$tdir/zzping-daemon")"
netsim="$(realpath "$tdir/zzping-netsim")"

disp=""
for n in $(seq 150 199); do
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

python3 -c 'import secrets; print(secrets.token_hex(32))' >"$work/secret"
mkdir -p "$work/saved"
# The daemon pings the router (198.18.0.10), the silent printer (.30) and the laptop
# answered only by "unreachable" (.31); the viewer opens 15 s later (the scenario of a
# user who starts the viewer on a running daemon).
W="$work" GUI="$gui" DAEMON="$daemon" "$netsim" exec --scenario tests/scenarios/demo.toml \
    --truth "$work/truth.jsonl" -- bash -c '
    "$DAEMON" --config none --data-dir "$W/data" --target 198.18.0.10 \
        --target 198.18.0.30 --target 198.18.0.31 --rate 50 --live 127.0.0.1:7878 \
        --live-secret-file "$W/secret" --metrics off --duration 120 &
    sleep 15
    RUST_LOG=zzping_gui=info "$GUI" --config none --live 127.0.0.1 \
        --secret-file "$W/secret" --prefill 60 --save-dir "$W/saved" \
        --width 1600 --height 900 --exit-after-ms 100000
    wait' >"$work/sim.log" 2>&1 &
sim_pid=$!

# Waits (bounded) until the log has at least N lines matching PATTERN; sets $line to
# the Nth.
line=""
wait_log() {
    local pattern="$1" n="$2" limit="${3:-30}" t=0
    while (( t < limit * 10 )); do
        local c
        c="$(grep -c -- "$pattern" "$work/sim.log" || true)"
        if (( c >= n )); then line="$(grep -- "$pattern" "$work/sim.log" | sed -n "${n}p")"; return 0; fi
        kill -0 "$sim_pid" 2>/dev/null || fail "the simulation ended while waiting for '$pattern'"
        sleep 0.1; t=$((t + 1))
    done
    fail "no '$pattern' (#$n) within ${limit}s"
}
states=0
# Runs an xdotool action and waits for the state line it causes: sets $s to it.
s=""
act() {
    states=$((states + 1))
    xdotool "$@"
    wait_log "state:" "$states" 10
    s="$line"
}
saves=0
# Presses "Save PNG" and waits for the line saying where it wrote: sets $saved to it.
saved=""
save_png() {
    saves=$((saves + 1))
    xdotool mousemove "${SAVE_XY[@]}" click 1
    wait_log "picture saved to" "$saves" 20
    saved="$line"
}

wid="$(timeout 60 xdotool search --sync --name '^zzping' | head -1)" \
    || fail "no viewer window within 60 s"
wait_log "live host 198.18.0.31" 1 30
wait_log "live host 198.18.0.30" 1 30
wait_log "live host 198.18.0.10" 1 30
# The prefill (15 s of three hosts: a few datagrams) comes with the hosts; the viewer
# hands what arrived to the window every 500 ms: four batches' time.
sleep 2
xdotool windowmove "$wid" 0 0 windowfocus --sync "$wid" 2>/dev/null || true

# Widget positions in the 1600x900 window (the layout of window.rs; found on a grab of
# the window, and checked here by the effect of each click).
SAVE_XY=(775 57)
H1_XY=(136 57)
M5_XY=(82 57)
GOTO_XY=(480 57)
HIDE1_XY=(78 130)

python3 zzping-gui/tests/xvfb/grab.py "$disp" "$work/window.png"
save_png
first="$saved"
python3 zzping-gui/tests/xvfb/check_live.py first "$first" "$work/window.png" \
    || fail "first picture"

act key End
[[ "$s" == *"follow true"* && "$s" == *"level 0 us"* ]] || fail "End: $s"
act mousemove "${H1_XY[@]}" click 1
[[ "$s" == *"span 3600000000 us; follow true"* ]] || fail "1 h: $s"
act mousemove "${M5_XY[@]}" click 1
[[ "$s" == *"span 300000000 us; follow true"* ]] || fail "5 min: $s"
xdotool mousemove "${GOTO_XY[@]}" click 1 type --delay 20 -- '-20s'
now_us=$(( $(date +%s%N) / 1000 ))
act key Return
python3 - "$s" "$now_us" <<'PY' || fail "go to -20s: $s"
import re, sys
s, now = sys.argv[1], int(sys.argv[2])
t0 = int(re.search(r"view (\d+)\.\.", s).group(1))
assert "follow false" in s, s
assert abs(t0 - (now - 20_000_000)) < 3_000_000, (t0 - now) / 1e6
PY
act mousemove "${HIDE1_XY[@]}" click 1
[[ "$s" == *"lanes 198.18.0.30,198.18.0.31; hidden 198.18.0.10"* ]] || fail "hide: $s"
act key End
[[ "$s" == *"follow true"* ]] || fail "End again: $s"
sleep 3
python3 zzping-gui/tests/xvfb/grab.py "$disp" "$work/window2.png"
taken_us=$(( $(date +%s%N) / 1000 ))
save_png
second="$saved"
python3 zzping-gui/tests/xvfb/check_live.py second "$second" "$work/window2.png" "$first" "$taken_us" \
    || fail "second picture"

if [[ -n "$keep" ]]; then
    mkdir -p "$keep"
    cp "$work/window.png" "$work/window2.png" "$keep/"
    cp "$work"/saved/*.png "$keep/"
    echo "xvfb_live: pictures copied to $keep"
fi
echo "xvfb_live: ok"
echo "1 passed, 0 failed"
