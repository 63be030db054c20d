"""Pixels for the Xvfb tests, with nothing but the Python standard library (a fresh
machine has no imaging library): read a PNG, write one, and grab the X screen through
libX11 (ctypes), so a test can check what the real window shows."""
import ctypes
import struct
import zlib


def read_png(path):
    """(width, height, rows): rows of RGB(A) bytes, 8-bit RGBA or RGB, non-interlaced."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    assert depth == 8 and ctype in (2, 6), f"{path}: expected 8-bit RGB or RGBA"
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return Image(w, h, rows, bpp)


class Image:
    def __init__(self, w, h, rows, bpp):
        self.w, self.h, self.rows, self.bpp = w, h, rows, bpp

    def px(self, x, y):
        r = self.rows[y]
        return tuple(r[x * self.bpp:x * self.bpp + 3])

    def write_png(self, path):
        raw = b"".join(b"\x00" + r for r in self.rows)
        ctype = 6 if self.bpp == 4 else 2

        def chunk(kind, body):
            return (struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, ctype, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
            f.write(chunk(b"IEND", b""))


class _XImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("byte_order", ctypes.c_int), ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
    ]


def grab_screen(display):
    """The whole screen of X display `display` (":90") as an RGB Image."""
    x = ctypes.cdll.LoadLibrary("libX11.so.6")
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XDefaultRootWindow.restype = ctypes.c_ulong
    x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x.XDisplayWidth.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XGetImage.restype = ctypes.POINTER(_XImage)
    x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                            ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]
    d = x.XOpenDisplay(display.encode())
    assert d, f"cannot open display {display}"
    w, h = x.XDisplayWidth(d, 0), x.XDisplayHeight(d, 0)
    img = x.XGetImage(d, x.XDefaultRootWindow(d), 0, 0, w, h, 0xFFFFFFFF, 2)  # ZPixmap
    assert img, "XGetImage failed"
    im = img.contents
    assert im.bits_per_pixel == 32, f"{im.bits_per_pixel} bits per pixel"
    bpl = im.bytes_per_line
    buf = ctypes.string_at(im.data, bpl * h)
    rows = []
    for y in range(h):
        line = buf[y * bpl:y * bpl + w * 4]
        # Little-endian BGRX to RGB.
        out = bytearray(w * 3)
        out[0::3] = line[2::4]
        out[1::3] = line[1::4]
        out[2::3] = line[0::4]
        rows.append(bytes(out))
    x.XCloseDisplay(d)
    return Image(w, h, rows, 3)


def near(p, c, tol):
    return all(abs(p[k] - c[k]) <= tol for k in range(3))


def rgb(r, g, b):
    """8-bit RGB of an iced `Color::from_rgb` (as the viewer's colour constants)."""
    return tuple(round(v * 255) for v in (r, g, b))
