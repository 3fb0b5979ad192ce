"""Open the built site in headless Chromium and check what a reader would see.

    python docs/check_site.py docs/_build/html [--browser chromium]

Pages opened (Chrome DevTools Protocol over a websocket, ``websocket-client``): the index, the
API page of ``AVCorrespondence`` and two gallery pages. On each: the page loads, every image has
loaded with a size (figures included: each gallery page must show at least one; the separation
page its two audio players, with their sound), and every link
inside the site points at a page that exists and, with a ``#fragment``, at an id on it. A
screenshot of each goes to ``<site>/../screenshots/``. Every other page of the site has its
internal links checked from its HTML. Exit status 1 with the problems listed, 0 when none.
"""

import argparse
import base64
import html.parser
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PAGES = {  # page -> least numbers of loaded figures and of audio players it must show
    "index.html": (0, 0),
    "generated/skavc.AVCorrespondence.html": (0, 0),
    "auto_examples/plot_localization.html": (1, 0),
    "auto_examples/plot_separation.html": (1, 2),
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
LOAD_TIMEOUT = 60.0

#: Run in the page: its images (loaded or not, and their size) and its links.
PAGE_FACTS = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images).map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  audio: Array.from(document.querySelectorAll('audio')).map(a => a.src.length),
  text: document.body ? document.body.innerText.length : 0
})"""


class _Ids(html.parser.HTMLParser):
    """The ids and the link targets of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def page_ids(path, cache={}):  # noqa: B006 - a cache of parsed pages for this run
    if path not in cache:
        parser = _Ids()
        parser.feed(path.read_text(errors="replace"))
        cache[path] = parser
    return cache[path]


def broken_link(site, page, href):
    """Why ``href`` (as written on ``page``, or absolute ``file://``) is broken, or None."""
    parsed = urllib.parse.urlparse(href)
    if parsed.scheme in ("http", "https", "mailto", "data", "javascript"):
        return None  # outside the site: not checked (no network)
    if parsed.scheme == "file":
        target = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme == "":
        if not parsed.path:
            target = page
        else:
            target = (page.parent / urllib.parse.unquote(parsed.path)).resolve()
    else:
        return None
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no such file"
    if site not in target.resolve().parents and target.resolve() != site:
        return None  # e.g. a downloaded source outside the site
    if parsed.fragment and target.suffix == ".html" and parsed.fragment not in page_ids(target).ids:
        return f"{href}: no id {parsed.fragment!r} on {target.name}"
    return None


class DevTools:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, browser):
        import websocket  # websocket-client, the docs extra

        self.profile = tempfile.mkdtemp(prefix="skavc-chromium-")
        self.process = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--allow-file-access-from-files", "--window-size=1280,1000", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + LOAD_TIMEOUT
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{browser} did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=LOAD_TIMEOUT)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)  # an event while waiting: kept for open()

    def open(self, url):
        """Navigate to ``url`` and wait for its load event."""
        self.events = []
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + LOAD_TIMEOUT
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not load in {LOAD_TIMEOUT:g} s")
            self.events.append(json.loads(self.socket.recv()))
        time.sleep(0.5)  # the theme's scripts settle

    def facts(self):
        result = self.call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
        return json.loads(result["result"]["value"])

    def screenshot(self, path, max_height=3000):
        """The page from its top, as far down as it goes (at most ``max_height`` CSS pixels)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


def check(site, browser):
    problems = []
    shots = site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    chrome = DevTools(browser)
    try:
        for name, (least_figures, least_players) in PAGES.items():
            page = site / name
            if not page.is_file():
                problems.append(f"{name}: not built")
                continue
            chrome.open(page.as_uri())
            facts = chrome.facts()
            chrome.screenshot(shots / (name.replace("/", "_").replace(".html", ".png")))
            if facts["text"] < 200:
                problems.append(f"{name}: almost no text ({facts['text']} characters)")
            broken = [i["src"] for i in facts["images"] if not i["complete"] or i["width"] == 0]
            problems += [f"{name}: image did not load: {src}" for src in broken]
            figures = [i for i in facts["images"] if "/_images/" in i["src"] and i["width"] > 0]
            if len(figures) < least_figures:
                problems.append(f"{name}: {len(figures)} figures shown, expected at least {least_figures}")
            players = [n for n in facts["audio"] if n > 1000]  # a player with its sound inline
            if len(players) < least_players:
                problems.append(f"{name}: {len(players)} audio players with sound, expected {least_players}")
            problems += [f"{name}: {why}" for why in (broken_link(site, page, href) for href in facts["links"]) if why]
            print(f"{name}: '{facts['title']}', {len(facts['images'])} images ({len(figures)} figures), "
                  f"{len(facts['links'])} links")
    finally:
        chrome.close()
    pages = sorted(site.rglob("*.html"))
    for page in pages:
        for href in page_ids(page).links:
            why = broken_link(site, page, href)
            if why:
                problems.append(f"{page.relative_to(site)}: {why}")
    print(f"{len(pages)} pages' internal links checked; screenshots in {shots}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built HTML folder (docs/_build/html)")
    parser.add_argument("--browser", help="Chromium's executable (default: the first of "
                        + ", ".join(BROWSERS) + " on PATH)")
    args = parser.parse_args()
    browser = args.browser or next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        sys.exit("no Chromium found: install Debian's chromium (apt-get install chromium) or pass --browser")
    problems = check(args.site.resolve(), browser)
    for problem in problems:
        print("problem:", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
