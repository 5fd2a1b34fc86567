"""`lstm-suite demo` (issue 19) in a real browser: headless Chromium, driven by Selenium, samples a melody and plays
it, translates a sentence and transcribes an uploaded WAV; every answer is checked against the model in-process."""
from __future__ import annotations

import shutil
import time

import pytest
import soundfile

NO_EXTRA = "the serve extra is not installed: pip install -e '.[serve]'"
pytest.importorskip("gradio", reason=NO_EXTRA)
webdriver = pytest.importorskip("selenium.webdriver", reason=NO_EXTRA)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from serving_fixtures import free_port, tiny_runs  # noqa: E402
from tasks.music.metrics import describe  # noqa: E402
from tasks.music.render import audio_unavailable_reason  # noqa: E402
from tasks.serving.demo import build_demo, launch  # noqa: E402
from tasks.serving.loading import choose_checkpoints, load  # noqa: E402
from tiny_tasks import babble  # noqa: E402

SHOWN = ("music", "translation", "speech")  # the other tasks have no checkpoint here: the page must say so
AUDIO_ELEMENTS = """
const found = [];
(function walk(root) {  // Gradio's player keeps its <audio> in a shadow root
    root.querySelectorAll('*').forEach(e => {
        if (e.tagName === 'AUDIO') found.push(e);
        if (e.shadowRoot) walk(e.shadowRoot);
    });
})(arguments[0]);
"""
FIND_AUDIO = AUDIO_ELEMENTS + "return found.filter(a => a.src && a.readyState >= 1 && a.duration > 0).map(a => a.duration);"
PLAY = AUDIO_ELEMENTS + """
const done = arguments[arguments.length - 1];
const audio = found.find(a => a.src && a.readyState >= 1);
const started = Date.now();  // a loaded machine may take a while to move the clock: wait up to 8 s for it
let retried = false;  // and a headless browser's media pipeline can drop the first play() on such a machine: one more
const report = () => { done([audio.currentTime, audio.paused]); audio.pause(); };
const poll = () => {
  if (audio.currentTime > 0 || Date.now() - started > 8000) return report();
  if (audio.paused && !retried && Date.now() - started > 2500) { retried = true; audio.play().catch(() => {}); }
  setTimeout(poll, 100);
};
audio.play().then(() => setTimeout(poll, 300), error => done(['refused', String(error)]));"""


def browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium or chromedriver not installed: apt-get install chromium chromium-driver")
    return chromium, driver


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(browser at the demo page, {task: model in this process})."""
    chromium, driver_path = browser_or_skip()
    runs = tiny_runs(tmp_path_factory, SHOWN)
    shown = tmp_path_factory.mktemp("demo-runs")
    for task in SHOWN:
        (shown / task).symlink_to(runs / task)
    served, missing = choose_checkpoints([], {}, shown)
    models = {task: load(task, path) for task, path in served.items()}
    demo = build_demo(models, served, missing)
    port = free_port()
    launch(demo, port=port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(lambda: browser.find_elements(By.ID, "header"), "the page to load")
        yield browser, models
    finally:
        browser.save_screenshot(str(tmp_path_factory.getbasetemp() / "demo.png"))  # to look at when a test fails
        browser.quit()
        demo.close()


def wait_for(condition, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def value_of(browser, element_id: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input").get_attribute("value")


def open_tab(browser, task: str) -> None:
    browser.find_element(By.ID, f"tab-{task}-button").click()


def test_page_names_each_checkpoint_and_how_to_train_the_others(page):
    browser, models = page
    header = browser.find_element(By.ID, "header").text
    for task in SHOWN:
        assert f"{task}/tiny/checkpoints/best.ckpt" in header, header
    for task in ("music-pianoroll", "video", "forecast"):
        assert f"make train TASK={task}" in header, header
    tabs = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")]
    assert tabs == ["Melodies", "Translation", "Speech"]


def test_melody_sampler_plays_audio_and_shows_piano_rolls(page):
    browser, models = page
    open_tab(browser, "music")
    browser.find_element(By.CSS_SELECTOR, "#music-seed textarea, #music-seed input").send_keys("7")
    browser.find_element(By.ID, "music-sample").click()
    melodies = models["music"].generate(2, 128, seed=7)  # the page's defaults: 2 melodies of 128 16ths
    summary = wait_for(lambda: browser.find_element(By.ID, "music-summary").text, "the melodies")
    for melody in melodies:
        assert f"range {describe(melody)['pitch_range']} semitones" in summary, summary
    roll = browser.find_element(By.CSS_SELECTOR, "#music-roll-0 img")
    assert wait_for(lambda: browser.execute_script("return arguments[0].naturalWidth", roll), "the piano roll") > 100
    if audio_unavailable_reason() is not None:
        pytest.skip(f"no audio to play: {audio_unavailable_reason()}")
    player = browser.find_element(By.ID, "music-audio-0")
    durations = wait_for(lambda: browser.execute_script(FIND_AUDIO, player), "a playable audio element")
    assert durations[0] >= 128 / 4 * 60 / 100  # 128 16ths at 100 quarter notes a minute (and the release)
    position, paused = browser.execute_async_script(PLAY, player)
    assert position != "refused" and position > 0 and not paused, (position, paused)


def test_translation_shows_the_translation_and_its_attention(page):
    browser, models = page
    translation = models["translation"]
    candidates = ["three hundred and twelve", "forty-two", "seven thousand and one", "ninety-nine", "one"]
    text, expected = next(((t, translation.translate([t])[0]) for t in candidates if translation.translate([t])[0]),
                          (None, None))
    assert text, "the tiny model translates none of the candidates to anything: pick others"
    open_tab(browser, "translation")
    browser.find_element(By.CSS_SELECTOR, "#translate-input textarea").send_keys(text)
    browser.find_element(By.ID, "translate-run").click()
    assert wait_for(lambda: value_of(browser, "translate-output"), "the translation") == expected
    heatmap = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#translate-attention img"), "the attention map")
    assert browser.execute_script("return arguments[0].naturalWidth", heatmap[0]) > 50


def test_speech_transcribes_an_uploaded_wav(page, tmp_path):
    browser, models = page
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, babble(1.25, 16000, seed=4), 16000)
    expected = models["speech"].transcribe([str(clip)])[0]
    open_tab(browser, "speech")
    upload = browser.find_element(By.CSS_SELECTOR, "#speech-input input[type=file]")
    upload.send_keys(str(clip))
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#speech-input .waveform-container, #speech-input audio"),
             "the uploaded clip")
    browser.find_element(By.ID, "speech-run").click()
    details = wait_for(lambda: browser.find_element(By.ID, "speech-details").text, "the transcript")
    assert "1.25 s of audio" in details, details
    assert value_of(browser, "speech-output") == expected
