"""Render a vocalsep report page in headless Chromium: a PNG screenshot, and a check that every image
decoded and every audio player found its file (the page's own load-time check, read from the DOM).

    python bench/render_report.py separated/report.html [--png report.png] [--width 1200] [--height 2400]

Exit code 0 when the page reports "ok", 1 when an image or player is missing (listed), 2 when
Chromium is not installed (apt-get install chromium).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page")
    ap.add_argument("--png", help="screenshot path (default: the page's name with .png)")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    exe = chromium()
    if exe is None:
        print("render_report: Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    page = Path(args.page).resolve()
    if not page.is_file():
        print(f"render_report: {page}: no such page", file=sys.stderr)
        return 1
    png = Path(args.png or page.with_suffix(".png")).resolve()
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--autoplay-policy=no-user-gesture-required",
              "--allow-file-access-from-files", "--virtual-time-budget=15000"]
    subprocess.run(common + [f"--screenshot={png}", f"--window-size={args.width},{args.height}", page.as_uri()],
                   capture_output=True, timeout=180, check=False)
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    m = re.search(r'<body[^>]*data-check="([^"]*)"', dom)
    status = m.group(1) if m else "the page's check did not run (no data-check on <body>)"
    print(f"{page.name}: {status}; screenshot {png if png.is_file() else 'not written'}")
    return 0 if status.startswith("ok") and png.is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
