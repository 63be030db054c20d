"""grab.py DISPLAY OUT.png: writes the X screen of DISPLAY as a PNG."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import pixels  # noqa: E402

pixels.grab_screen(sys.argv[1]).write_png(sys.argv[2])
