"""The book (examples/alexnet, Jupyter Book 1): built from scratch as the README builds it, every page
executed in a fresh kernel (a cell that raises fails the build, `raise_on_error` in _config.yml, except
a cell tagged raises-exception), then read page by page in headless Chromium served from 127.0.0.1:
every image decoded, every formula typeset, no error or traceback outside the one cell meant to fail,
every internal link and anchor resolving, and no request leaving the machine. A screenshot of each
page is saved in examples/alexnet/_build/screenshots/ for a person to look at.

This replaces running the notebooks with nbclient: the build executes the same pages.
"""
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("jupyter_book", reason="building the book needs the book extra: pip install -e '.[book]'")

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "examples" / "alexnet"
BUILD = BOOK / "_build"
HTML = BUILD / "html"
SCREENSHOTS = BUILD / "screenshots"
CHROMIUM = os.environ.get("MINIGRAD_CHROMIUM", "/usr/bin/chromium")
# Pages whose figures are the point: each must show at least one decoded image.
PAGES_WITH_FIGURES = {"architecture", "backward_pass", "beyond_the_chain", "failure_modes", "training", "visualising",
                      "towers"}


def pages_of_the_toc():
    """The documents the book's _toc.yml lists, its root first."""
    names = []
    for line in (BOOK / "_toc.yml").read_text().splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        if key in ("root", "file"):
            names.append(value.strip())
    return names


def jupyter_book():
    beside = Path(sys.executable).with_name("jupyter-book")
    return str(beside) if beside.exists() else shutil.which("jupyter-book")


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Build the book from an empty _build, with a kernel that runs this interpreter and this checkout's
    minigrad. Returns the build's output."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env = {**os.environ, "JUPYTER_PATH": str(kernels.parent.parent), "PYTHONPATH": os.pathsep.join([str(ROOT)] + inherited)}
    env.pop("MPLBACKEND", None)                      # the kernel's own (inline) backend draws the figures into the pages
    env.pop("MINIGRAD_BVLC_ONNX", None)              # the trained_alexnet page as CI sees it: no zoo file
    shutil.rmtree(BUILD, ignore_errors=True)
    done = subprocess.run([jupyter_book(), "build", str(BOOK)], env=env, capture_output=True, text=True,
                          timeout=1800)
    log = done.stdout + done.stderr
    BUILD.mkdir(exist_ok=True)
    (BUILD / "build.log").write_text(log)
    assert done.returncode == 0, f"jupyter-book build failed (the log is in {BUILD / 'build.log'}):\n{log[-6000:]}"
    return log


def test_every_page_of_the_toc_is_built_and_executed(built_book):
    pages = pages_of_the_toc()
    assert {"intro", "architecture", "your_turn", "training", "visualising", "beyond_the_chain"} <= set(pages)
    for name in pages:
        assert (HTML / f"{name}.html").is_file(), f"{name}.html was not written"
        if name != "intro":
            executed = BUILD / "jupyter_execute" / f"{name}.ipynb"
            cells = json.loads(executed.read_text())["cells"]
            assert any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code"), f"{name} has no output"
    assert "unknown document" not in built_book and "undefined label" not in built_book


class LocalServer:
    """The built HTML served on 127.0.0.1 (an ephemeral port), as a reader's browser would fetch it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    def __enter__(self):
        handler = functools.partial(self.Quiet, directory=str(HTML))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# What the page looks like to a reader, gathered in the browser after MathJax has typeset it.
READ_PAGE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const images = [...document.querySelectorAll('img')];
  await Promise.all(images.map(img => img.complete ? null : new Promise(r => { img.onload = img.onerror = r; })));
  const main = document.querySelector('main') || document.body;
  const inExpectedFailure = el => el.closest('.tag_raises-exception') !== null;
  const errors = [...main.querySelectorAll('.output.error, .output.traceback, .output.stderr, .stderr')]
      .filter(el => !inExpectedFailure(el)).map(el => el.innerText.slice(0, 300));
  const expected = [...main.querySelectorAll('.tag_raises-exception')].map(el => el.innerText);
  const text = [...main.querySelectorAll('p, li, td, .cell_output')].map(el => el.innerText).join('\\n');
  return {
    images: images.map(img => ({src: img.getAttribute('src'), width: img.naturalWidth})),
    math: main.querySelectorAll('mjx-container').length,
    raw_math: ['\\\\(', '\\\\[', '$$'].filter(s => text.includes(s)),
    errors: errors,
    expected_failures: expected,
    tracebacks: [...main.querySelectorAll('.cell_output')].filter(el => !inExpectedFailure(el))
        .map(el => el.innerText).filter(t => t.includes('Traceback (most recent call last)') || t.includes('Error: ')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    ids: [...document.querySelectorAll('[id]')].map(el => el.id),
  };
}"""


def test_every_page_reads_in_a_real_browser(built_book):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (test extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    SCREENSHOTS.mkdir(exist_ok=True)
    pages = pages_of_the_toc()
    seen, outside = {}, []
    with LocalServer() as site, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def only_this_machine(route):
            url = route.request.url
            if url.startswith(site.origin) or url.startswith(("data:", "blob:", "about:")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        page.route("**/*", only_this_machine)
        for name in pages:
            response = page.goto(f"{site.origin}/{name}.html", wait_until="networkidle")
            assert response.ok, f"{name}.html: HTTP {response.status}"
            seen[name] = page.evaluate(READ_PAGE)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        browser.close()

    assert outside == [], f"requests left 127.0.0.1: {outside}"
    for name, found in seen.items():
        broken = [image["src"] for image in found["images"] if image["width"] == 0]
        assert not broken, f"{name}: images that did not decode: {broken}"
        assert not found["raw_math"], f"{name}: formulas left untypeset ({found['raw_math']})"
        assert not found["errors"] and not found["tracebacks"], f"{name}: error output {found['errors'] + found['tracebacks']}"
        if name in PAGES_WITH_FIGURES:
            assert found["images"], f"{name}: no figure on a page made to show figures"
    assert all(seen[name]["math"] > 0 for name in ("backward_pass", "your_turn", "beyond_the_chain", "architecture"))
    # The one cell meant to fail: the wrong LRN backward of the exercises, caught by the gradient check.
    failures = [(name, text) for name, found in seen.items() for text in found["expected_failures"]]
    assert len(failures) == 1 and failures[0][0] == "your_turn" and "AssertionError" in failures[0][1]
    # Internal links: the page exists, and so does the anchor on it.
    ids = {f"{name}.html": set(found["ids"]) for name, found in seen.items()}
    for name, found in seen.items():
        for href in found["links"]:
            target = urllib.parse.urlparse(href)
            if target.scheme or target.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            path = (HTML / f"{name}.html").parent / urllib.parse.unquote(target.path) if target.path else HTML / f"{name}.html"
            assert path.resolve().is_file(), f"{name}: link {href!r} leads to no file"
            if target.fragment and path.name in ids:
                assert target.fragment in ids[path.name], f"{name}: link {href!r}: no anchor {target.fragment!r}"
