"""check_live.py first SAVED_LINE WINDOW_PNG
   check_live.py second SAVED_LINE WINDOW_PNG FIRST_SAVED_LINE TAKEN_US

Checks the live viewer's pictures (see xvfb_live.sh): the one "Save PNG" wrote, placed
by the viewer's log line (`picture saved to PATH; WxH px, scale S; view T0..T1 us; lane
NAME x X0..X1 y Y0..Y1; ...`), and a grab of the real window."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from pixels import near, read_png, rgb  # noqa: E402

# canvas.rs colours.
GAP = rgb(0.24, 0.25, 0.28)
LOSS = rgb(0.93, 0.20, 0.22)
ERROR_LOSS = rgb(0.72, 0.08, 0.34)
ROUTER, PRINTER, LAPTOP = "198.18.0.10", "198.18.0.30", "198.18.0.31"


def parse(line):
    m = re.search(r"picture saved to (\S+); (\d+)x(\d+) px, scale ([\d.]+); view (\d+)\.\.(\d+) us", line)
    assert m, f"not a saved line: {line}"
    lanes = {
        name: tuple(int(v) for v in r)
        for name, *r in re.findall(r"lane (\S+) x (\d+)\.\.(\d+) y (\d+)\.\.(\d+)", line)
    }
    return {
        "path": m.group(1), "size": (int(m.group(2)), int(m.group(3))),
        "scale": float(m.group(4)), "t0": int(m.group(5)), "t1": int(m.group(6)),
        "lanes": lanes,
    }


def columns(img, lane):
    """Per sampled column of a lane: the colours at 1/4, 1/2 and 3/4 of its height."""
    x0, x1, y0, y1 = lane
    h = y1 - y0
    return [[img.px(x, y0 + h * k // 4) for k in (1, 2, 3)] for x in range(x0 + 2, x1 - 2, 3)]


def check_saved(s, expect_lanes, fits):
    """The saved picture: its lanes, red where every request failed (and in which red),
    the router mostly not red; with `fits`, the view fits the data (little grey)."""
    img = read_png(s["path"])
    assert (img.w, img.h) == s["size"] == (1600, 900), (img.w, img.h, s["size"])
    assert s["scale"] == 1.0, s["scale"]
    assert sorted(s["lanes"]) == sorted(expect_lanes), s["lanes"]
    report = {}
    for name, lane in s["lanes"].items():
        cols = columns(img, lane)
        grey = sum(all(near(p, GAP, 12) for p in c) for c in cols)
        data = [c for c in cols if not all(near(p, GAP, 12) for p in c)]
        errors = sum(all(near(p, ERROR_LOSS, 12) for p in c) for c in data)
        timeouts = sum(all(near(p, LOSS, 12) for p in c) for c in data)
        report[name] = (len(cols), grey, errors, timeouts)
        assert data, f"{name}: no column with data {report}"
        if fits:
            assert grey < 0.25 * len(cols), f"{name}: {grey} of {len(cols)} columns grey {report}"
        if name == LAPTOP:
            assert errors >= 0.95 * len(data), f"laptop not in the errors' red: {report}"
        elif name == PRINTER:
            assert timeouts >= 0.95 * len(data), f"printer not in the timeouts' red: {report}"
        elif name == ROUTER:
            assert errors + timeouts <= 0.1 * len(data), f"router mostly red: {report}"
    print(f"check_live: {os.path.basename(s['path'])}: span {(s['t1'] - s['t0']) / 1e6:.1f} s; "
          f"lanes (columns, grey, errors red, timeouts red): {report}")


def check_window(path, x):
    """In the real window (lanes' positions unknown here): column `x`, where there is data
    (the newest second or two at the right edge have no final frames yet), crosses a lane
    red in the errors' shade over 100+ px (the laptop) and one in the timeouts' red over
    100+ px (the printer)."""
    img = read_png(path)
    runs, cur, n = [], None, 0
    for y in range(img.h):
        p = img.px(x, y)
        k = "errors" if near(p, ERROR_LOSS, 12) else "timeouts" if near(p, LOSS, 12) else None
        if k == cur:
            n += 1
        else:
            if cur:
                runs.append((cur, n))
            cur, n = k, 1
    if cur:
        runs.append((cur, n))
    long = {k for k, n in runs if n >= 100}
    assert long == {"errors", "timeouts"}, f"window column {x}: red runs {runs}"
    print(f"check_live: window: column {x}: red runs {[r for r in runs if r[1] >= 20]}")


what, line, window = sys.argv[1:4]
s = parse(line)
if what == "first":
    span = s["t1"] - s["t0"]
    # The view fits the data received (15-20 s of it with the prefill), not 5 minutes.
    assert 10e6 <= span < 60e6, f"span {span / 1e6} s"
    check_saved(s, [ROUTER, PRINTER, LAPTOP], fits=True)
    # The middle of the plot (it fits the data).
    check_window(window, 1000)
else:
    first, taken = parse(sys.argv[4]), int(sys.argv[5])
    # A 5-minute span ("5 min" was pressed) over about 30 s of data: mostly grey.
    check_saved(s, [PRINTER, LAPTOP], fits=False)
    # Following: ends where it was saved (batches come every 0.5 s), later than the first.
    assert s["t1"] > first["t1"] + 3e6, (s["t1"] - first["t1"]) / 1e6
    assert abs(s["t1"] - taken) < 2.5e6, (s["t1"] - taken) / 1e6
    # 5 minutes over 1294 px: 40 px from the right edge is 9 s before now, where the
    # frames are final (after the 1 s timeout and a 0.5 s batch).
    check_window(window, 1590 - 40)
