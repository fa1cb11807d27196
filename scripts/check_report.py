"""Opens the HTML report of `social-reward report` in headless Chromium, as an analyst would see it,
checks it against the report's contract and saves a full-page screenshot.

    python scripts/check_report.py REPORT_DIR/index.html --screenshot OUT.png [--min-plots N]

It fails (exit 1, naming what) when:
- the browser logs a SEVERE console message (a JavaScript error, a resource that failed to load);
- an <img> has not finished loading or has naturalWidth 0 (a broken data: URI);
- there are fewer than N `figure.plot`;
- a `figure.plot` has no <svg> of at least 100x60 px on the page with at least 5 drawn elements
  (path, rect, circle, line, polyline, polygon, text) of non-empty extent;
- a `figure.plot` has no id or no non-empty <figcaption>;
- an element loads anything that is not a data: URI (img, script, link, iframe, ...);
- the page lacks its <h1>, <nav> or a <section id=...>.

Needs Debian's `chromium` and `chromium-driver` and selenium (PyPI). Selenium Manager, which would
download a driver, is never run: the driver's path is given to the Service.
"""
import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Belt and braces: should Selenium Manager ever run, it must not reach for the network.
os.environ.setdefault("SE_OFFLINE", "true")

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
except ImportError:
    sys.exit("check_report: selenium is missing: python -m pip install selenium")

WIDTH = 1280
MIN_SVG_W, MIN_SVG_H, MIN_DRAWN = 100, 60, 5
# The screenshot is cut at this height to keep the PNG a sane size (80,000 px was seen to work).
MAX_SHOT_H = 65536


def first_existing(*paths):
    for p in paths:
        if p and Path(p).is_file() and os.access(p, os.X_OK):
            return p
    return None


def start_browser(chromium, chromedriver, profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium refuses to start with its sandbox
        "--disable-dev-shm-usage",  # a container's /dev/shm is often 64 MiB
        "--disable-gpu",
        f"--window-size={WIDTH},900",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        # Nothing on the page may come from the network: no host resolves, so nothing is sent.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, log_output=os.path.join(profile, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


# Loads every image (a lazy one below the fold too), then waits until each has loaded or failed.
WAIT_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
for (const i of imgs) if (i.loading === 'lazy') i.loading = 'eager';
const pending = imgs.filter(i => !i.complete).map(i => new Promise(r => {
  i.addEventListener('load', r, {once: true});
  i.addEventListener('error', r, {once: true});
}));
const timeout = new Promise(r => setTimeout(r, 10000));
Promise.race([Promise.all(pending), timeout])
  .then(() => document.fonts ? document.fonts.ready : null)
  .then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
"""

INSPECT_JS = """
const [minW, minH, minDrawn] = arguments;
const short = s => (s.length > 80 ? s.slice(0, 60) + '...(' + s.length + ' chars)' : s);
const describe = el => {
  let d = el.tagName.toLowerCase();
  if (el.id) d += '#' + el.id;
  if (el.classList && el.classList.length) d += '.' + Array.from(el.classList).join('.');
  return d;
};
const out = {};
out.height = Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
out.width = document.documentElement.scrollWidth;
out.title = document.title;
out.h1 = Array.from(document.querySelectorAll('h1')).map(h => h.textContent.trim());
out.nav = document.querySelectorAll('nav').length;
out.sections = Array.from(document.querySelectorAll('section[id]')).map(s => s.id).filter(Boolean);
out.images = Array.from(document.images).map((img, n) => ({
  n, desc: describe(img), src: short(img.getAttribute('src') || ''),
  complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
  thumb: img.classList.contains('thumb'),
}));
const DRAWN = 'path,rect,circle,ellipse,line,polyline,polygon,text';
out.plots = Array.from(document.querySelectorAll('figure.plot')).map((fig, n) => {
  const cap = fig.querySelector('figcaption');
  const svgs = Array.from(fig.querySelectorAll('svg')).filter(s => !s.parentElement.closest('svg'));
  return {
    n, id: fig.id, caption: cap ? cap.textContent.trim() : null,
    svgs: svgs.map(svg => {
      const r = svg.getBoundingClientRect();
      const shapes = Array.from(svg.querySelectorAll(DRAWN));
      let drawn = 0;
      for (const s of shapes) {
        try {
          const b = s.getBBox();
          if (b.width > 0 || b.height > 0) drawn++;
        } catch (e) {}
      }
      return {width: Math.round(r.width), height: Math.round(r.height), elements: shapes.length, drawn};
    }),
  };
});
// Every URL the page itself names for loading; only data: URIs are allowed.
const URL_ATTRS = [
  ['img', 'src'], ['img', 'srcset'], ['script', 'src'], ['link', 'href'], ['iframe', 'src'],
  ['frame', 'src'], ['source', 'src'], ['source', 'srcset'], ['video', 'src'], ['video', 'poster'],
  ['audio', 'src'], ['track', 'src'], ['embed', 'src'], ['object', 'data'], ['input', 'src'],
  ['image', 'href'], ['image', 'xlink:href'], ['use', 'href'], ['use', 'xlink:href'],
  ['feImage', 'href'], ['feImage', 'xlink:href'],
];
out.external = [];
for (const [tag, attr] of URL_ATTRS) {
  for (const el of document.getElementsByTagName(tag)) {
    const v = el.getAttribute(attr);
    if (v === null) continue;
    const t = v.trim();
    if (t === '' && attr !== 'src' && attr !== 'data') continue;
    // <use href="#id"> points into the page itself.
    if (tag === 'use' && t.startsWith('#')) continue;
    if (attr.endsWith('srcset')) {
      for (const part of t.split(/,\\s+/)) {
        const u = part.trim().split(/\\s+/)[0];
        if (u && !u.toLowerCase().startsWith('data:')) out.external.push(describe(el) + ' ' + attr + '=' + short(u));
      }
    } else if (!t.toLowerCase().startsWith('data:')) {
      out.external.push(describe(el) + ' ' + attr + '="' + short(t) + '"');
    }
  }
}
// url(...) in style sheets and style attributes (fonts, backgrounds).
const cssTexts = Array.from(document.querySelectorAll('style')).map(s => ['<style>', s.textContent])
  .concat(Array.from(document.querySelectorAll('[style]')).map(e => [describe(e) + ' style', e.getAttribute('style')]));
for (const [where, css] of cssTexts) {
  for (const m of css.matchAll(/url\\(\\s*(['"]?)([^'")]*)\\1\\s*\\)/g)) {
    const u = m[2].trim();
    if (u && !u.startsWith('#') && !u.toLowerCase().startsWith('data:')) out.external.push(where + ' url(' + short(u) + ')');
  }
  for (const m of css.matchAll(/@import\\s+(?:url\\()?\\s*['"]?([^'")\\s;]+)/g)) {
    if (!m[1].toLowerCase().startsWith('data:')) out.external.push(where + ' @import ' + short(m[1]));
  }
}
// And whatever the browser did fetch (data: URIs are not listed here).
out.fetched = performance.getEntriesByType('resource').map(e => e.name)
  .filter(n => !n.toLowerCase().startsWith('data:')).map(short);
return out;
"""


def screenshot(driver, out_png, height):
    """A full-page PNG, 1280 px wide, without resizing the viewport (vh units stay put)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    h = max(1, min(int(max(size["height"], height)), MAX_SHOT_H))
    w = max(WIDTH, int(size["width"]))
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "fromSurface": True,
            "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
        },
    )
    data = base64.b64decode(shot["data"])
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    Path(out_png).write_bytes(data)
    return w, h, len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="the report's index.html")
    ap.add_argument("--screenshot", required=True, help="where to write the full-page PNG")
    ap.add_argument("--min-plots", type=int, default=1, help="fewest figure.plot the page must have (1)")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM_BIN"), help="the browser binary")
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER"), help="the driver binary")
    args = ap.parse_args()

    page = Path(args.page).resolve()
    if not page.is_file():
        sys.exit(f"check_report: no such file: {args.page}")
    # The real binary, not Debian's /usr/bin/chromium shell wrapper (which adds flags of its own).
    chromium = first_existing(args.chromium, "/usr/lib/chromium/chromium", "/usr/bin/chromium",
                              shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
    chromedriver = first_existing(args.chromedriver, "/usr/bin/chromedriver", shutil.which("chromedriver") or "")
    if not chromium or not chromedriver:
        sys.exit("check_report: Chromium or its driver is missing: apt-get install -y chromium chromium-driver")

    failures = []
    profile = tempfile.mkdtemp(prefix="check-report-")
    driver = None
    t0 = time.monotonic()
    try:
        try:
            driver = start_browser(chromium, chromedriver, profile)
        except WebDriverException as e:
            log = Path(profile, "chromedriver.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            sys.exit(f"check_report: could not start headless Chromium: {e.msg or e}\n{tail}")
        driver.get(page.as_uri())
        driver.execute_async_script(WAIT_IMAGES_JS)
        info = driver.execute_script(INSPECT_JS, MIN_SVG_W, MIN_SVG_H, MIN_DRAWN)
        shot_w, shot_h, shot_bytes = screenshot(driver, args.screenshot, info["height"])
        console = driver.get_log("browser")
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    elapsed = time.monotonic() - t0

    # Console: anything SEVERE fails, the rest is only shown.
    for m in console:
        if m.get("level") == "SEVERE":
            failures.append(f"console error: {m.get('message', '').strip()[:500]}")

    # The page's skeleton.
    if not info["h1"]:
        failures.append("no <h1>")
    if not info["nav"]:
        failures.append("no <nav>")
    if not info["sections"]:
        failures.append("no <section id=...>")

    # Images.
    for img in info["images"]:
        if not img["complete"]:
            failures.append(f"image {img['n']} ({img['desc']}, src {img['src']!r}) did not finish loading")
        elif img["naturalWidth"] == 0:
            failures.append(f"image {img['n']} ({img['desc']}, src {img['src']!r}) is broken: naturalWidth 0")

    # Plots.
    plots = info["plots"]
    if len(plots) < args.min_plots:
        failures.append(f"{len(plots)} figure.plot on the page, expected at least {args.min_plots}")
    ids = [p["id"] for p in plots if p["id"]]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        failures.append(f"figure.plot id {dup!r} is used more than once")
    for p in plots:
        name = f"figure.plot#{p['id']}" if p["id"] else f"figure.plot number {p['n'] + 1} (no id)"
        if not p["id"]:
            failures.append(f"{name}: has no id")
        if not p["caption"]:
            failures.append(f"{name}: has no <figcaption> text")
        if not p["svgs"]:
            failures.append(f"{name}: has no <svg>")
            continue
        good = [s for s in p["svgs"] if s["width"] >= MIN_SVG_W and s["height"] >= MIN_SVG_H and s["drawn"] >= MIN_DRAWN]
        if not good:
            s = max(p["svgs"], key=lambda s: (s["drawn"], s["width"] * s["height"]))
            why = []
            if s["width"] < MIN_SVG_W or s["height"] < MIN_SVG_H:
                why.append(f"its <svg> is {s['width']}x{s['height']} px on the page, under {MIN_SVG_W}x{MIN_SVG_H}")
            if s["drawn"] < MIN_DRAWN:
                why.append(f"its <svg> draws {s['drawn']} visible shapes ({s['elements']} shape elements), under {MIN_DRAWN}")
            failures.append(f"{name}: " + "; ".join(why))

    # Nothing but data: URIs.
    for e in info["external"]:
        failures.append(f"external resource: {e}")
    for url in info["fetched"]:
        failures.append(f"the browser fetched {url} (only data: URIs may be loaded)")

    # Summary.
    thumbs = sum(1 for i in info["images"] if i["thumb"])
    print(f"page: {page}  ({elapsed:.1f}s in Chromium)")
    print(f"  title {info['title']!r}, h1 {info['h1'][:1]}, sections {info['sections']}")
    print(f"  plots: {len(plots)} (" + ", ".join(
        f"{p['id'] or '?'}: " + ("/".join(f"{s['width']}x{s['height']}px {s['drawn']} shapes" for s in p["svgs"]) or "no svg")
        for p in plots) + ")")
    print(f"  images: {len(info['images'])} ({thumbs} img.thumb), broken: "
          f"{sum(1 for i in info['images'] if not i['complete'] or i['naturalWidth'] == 0)}")
    print(f"  page: {info['width']}x{info['height']} px; screenshot {args.screenshot}: "
          f"{shot_w}x{shot_h} px, {shot_bytes} bytes" + (" (cut at max height)" if info["height"] > shot_h else ""))
    print(f"  console: {len(console)} message(s)")
    for m in console:
        print(f"    {m.get('level')}: {m.get('message', '').strip()[:300]}")

    if failures:
        print(f"FAIL: {len(failures)} problem(s) in {page}:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
