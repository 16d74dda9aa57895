"""The chat page at / in a real headless Chromium, driven by Playwright.

Chromium comes from Debian (`.ci/run` installs it); the test is skipped, saying why, only where no
browser is installed and none could be.
"""
import shutil

import numpy as np
import pytest
import soundfile as sf

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from audioflamingo.presets import build
    from audioflamingo.serve.app import ServeConfig, create_app
    from audioflamingo.tasks import AudioFlamingoPipeline
    from tests.serve.test_api import Server

    model, tok = build("tiny", seed=2)
    srv = Server(create_app(AudioFlamingoPipeline(model, tok), ServeConfig(max_audio_seconds=3)))
    d = tmp_path_factory.mktemp("page")
    t = np.arange(16000) / 16000
    sf.write(d / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    sf.write(d / "long.wav", np.zeros(16000 * 5, np.float32) + 0.1, 16000)
    (d / "notes.txt").write_text("not audio at all")
    yield srv, d
    srv.stop()


@pytest.fixture()
def page(site):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page()
        pg.goto(site[0].url + "/")
        yield pg
        browser.close()


def test_upload_waveform_and_multi_turn_streamed_chat(site, page):
    _, d = site
    page.set_input_files("#file", str(d / "tone.wav"))
    page.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    assert "tone.wav: 1.0 s" in page.inner_text("#status")
    for n, q in enumerate(["What do you hear?", "And is it loud?"], 1):
        page.fill("#question", q)
        page.click("#send")
        page.wait_for_function(f"document.querySelectorAll('.assistant[data-state=done]').length == {n}",
                               timeout=30000)
    assert page.locator(".user").all_inner_texts() == ["What do you hear?", "And is it loud?"]
    assert page.inner_text("#error") == ""
    page.screenshot(path=str(d / "chat.png"))


def test_errors_are_shown(site, page):
    _, d = site
    page.fill("#question", "hello?")
    page.click("#send")
    assert "choose or record a clip first" in page.inner_text("#error")
    page.set_input_files("#file", str(d / "notes.txt"))
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=15000)
    assert "cannot decode" in page.inner_text("#error")
    page.set_input_files("#file", str(d / "long.wav"))  # decodes in the browser, refused by the server
    page.wait_for_selector("#wave[data-drawn='true']", timeout=15000)
    page.fill("#question", "what is it?")
    page.click("#send")
    page.wait_for_function("document.getElementById('error').textContent.includes('over the limit')", timeout=15000)
