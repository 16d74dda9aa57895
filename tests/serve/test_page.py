"""The chat page at / in a real headless Chromium, driven by Playwright.

Chromium comes from Debian (`.ci/run` installs it); the test is skipped, saying why, only where no
browser is installed and none could be. Set AF_SCREENSHOT_DIR to keep the before/after screenshots
that docs/SERVING.md shows.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NAME = "af-default"
KEY = "page-s3cret"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    t = np.arange(16000) / 16000
    sf.write(d / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    sf.write(d / "long.wav", np.zeros(16000 * 10, np.float32) + 0.1, 16000)
    (d / "notes.txt").write_text("not audio at all")
    shutil.copy(Path(__file__).resolve().parents[2] / "audioflamingo/assets/example.flac", d / "example.flac")
    return d


def _site(pipe, **cfg):
    from audioflamingo.serve.app import ServeConfig, create_app
    from tests.serve.helpers import Server

    return Server(create_app(pipe, ServeConfig(model_name=NAME, max_audio_seconds=8, **cfg)))


@pytest.fixture(scope="module")
def site(default_pipe):
    srv = _site(default_pipe)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keyed_site():
    """`audioflamingo serve --api-key KEY`, the command a user runs."""
    from tests.serve.helpers import CliServer

    srv = CliServer("--api-key", KEY)
    yield srv
    srv.stop()


class Page:
    """A fresh browser page on `url`, recording every failed HTTP response it saw."""

    def __init__(self, p, url):
        self.browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        self.pg = self.browser.new_page(viewport={"width": 860, "height": 720})
        self.failed = []
        self.pg.on("response", lambda r: r.status >= 400 and self.failed.append((r.status, r.url)))
        self.pg.goto(url + "/")
        self.pg.wait_for_load_state("networkidle")


@pytest.fixture()
def browser_page():
    opened = []
    with sync_api.sync_playwright() as p:
        yield lambda url: opened.append(Page(p, url)) or opened[-1]
        for o in opened:
            o.browser.close()


def _ask(pg, q, n):
    pg.fill("#question", q)
    pg.click("#send")
    pg.wait_for_function(f"document.querySelectorAll('.assistant[data-state=done]').length == {n}", timeout=30000)


def test_conversation_with_labels_playback_model_name_and_favicon(site, clips, browser_page, default_pipe):
    page = browser_page(site.url)
    pg = page.pg
    assert pg.inner_text("#model") == f"model: {NAME}"
    shots = os.environ.get("AF_SCREENSHOT_DIR")
    if shots:
        pg.screenshot(path=str(Path(shots) / "serve-page-before.png"), full_page=True)
    pg.get_by_label("Audio clip").set_input_files(str(clips / "example.flac"))  # the <label> names the input
    pg.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    assert pg.inner_text("#status") == "example.flac: 6.6 s"
    assert pg.get_attribute("#wave", "role") == "img"
    assert pg.get_attribute("#wave", "aria-label") == "Waveform of example.flac: 6.6 s"
    pg.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15000)
    assert pg.is_visible("#player") and abs(pg.evaluate("document.getElementById('player').duration") - 6.6) < 0.1
    pg.get_by_label("Question").fill("What do you hear?")
    pg.click("#send")
    pg.wait_for_function("document.querySelectorAll('.assistant[data-state=done]').length == 1", timeout=30000)
    _ask(pg, "Is it loud?", 2)
    assert pg.locator(".msg .who").all_inner_texts() == ["YOU", "ASSISTANT", "YOU", "ASSISTANT"]  # CSS upper-cases
    assert pg.locator(".user .text").all_inner_texts() == ["What do you hear?", "Is it loud?"]
    # the page shows what the model answers in-process (greedy): nothing lost or added on the way
    assert pg.locator(".assistant .text").all_inner_texts()[0] == default_pipe.chat(clips / "example.flac").send(
        "What do you hear?"
    )
    assert pg.inner_text("#error") == ""
    if shots:
        pg.screenshot(path=str(Path(shots) / "serve-page-after.png"), full_page=True)
    assert page.failed == []  # the favicon included
    assert (
        pg.evaluate("fetch('/favicon.ico').then(r => r.status + ' ' + r.headers.get('content-type'))")
        == "200 image/svg+xml"
    )


def test_every_input_has_a_label(site, browser_page):
    pg = browser_page(site.url).pg
    unlabelled = pg.evaluate("""[...document.querySelectorAll('input')]
        .filter(i => !i.labels || i.labels.length === 0).map(i => i.id)""")
    assert unlabelled == []
    assert pg.text_content("#wave") == "No clip loaded"  # the canvas's fallback text and accessible name
    assert pg.get_by_role("img", name="Waveform: no clip loaded").count() == 1


def test_failed_upload_clears_the_old_clip_and_conversation(site, clips, browser_page):
    pg = browser_page(site.url).pg
    pg.set_input_files("#file", str(clips / "tone.wav"))
    pg.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    _ask(pg, "What do you hear?", 1)
    pg.set_input_files("#file", str(clips / "notes.txt"))
    pg.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=15000)
    assert "cannot decode" in pg.inner_text("#error")
    assert pg.get_attribute("#wave", "data-drawn") == "false" and pg.inner_text("#status") == ""
    assert pg.locator(".msg").count() == 0 and not pg.is_visible("#player")
    assert pg.get_attribute("#wave", "aria-label") == "Waveform: no clip loaded"
    pg.fill("#question", "and now?")
    pg.click("#send")
    assert "choose or record a clip first" in pg.inner_text("#error")  # it says so, and why is on screen


def test_server_refusals_are_shown(site, clips, browser_page):
    pg = browser_page(site.url).pg
    pg.fill("#question", "hello?")
    pg.click("#send")
    assert "choose or record a clip first" in pg.inner_text("#error")
    pg.set_input_files("#file", str(clips / "long.wav"))  # decodes in the browser, refused by the server
    pg.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    pg.fill("#question", "what is it?")
    pg.click("#send")
    pg.wait_for_function("document.getElementById('error').textContent.includes('over the limit')", timeout=15000)
    assert pg.locator(".msg").count() == 0  # the refused turn is not left in the conversation


def test_with_api_key_the_page_asks_for_it(keyed_site, clips, browser_page):
    page = browser_page(keyed_site.url)
    pg = page.pg
    assert pg.is_visible("#keyform") and "needs an API key" in pg.inner_text("#error")
    assert pg.inner_text("#model") == ""
    pg.get_by_label("API key").fill("wrong")
    pg.click("#usekey")
    pg.wait_for_function("document.getElementById('error').textContent.includes('refused')", timeout=15000)
    pg.get_by_label("API key").fill(KEY)
    pg.click("#usekey")
    pg.wait_for_function(
        "document.getElementById('model').textContent == 'model: audioflamingo-default'", timeout=15000
    )
    assert not pg.is_visible("#keyform") and pg.inner_text("#error") == ""
    pg.set_input_files("#file", str(clips / "tone.wav"))
    pg.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    _ask(pg, "What do you hear?", 1)
    assert pg.inner_text("#error") == ""
    assert {s for s, _ in page.failed} == {401}  # only the two refused tries
