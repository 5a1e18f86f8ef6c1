"""The streaming package plays in real headless Chromium (Debian's, driven by Playwright) through the dashboard's
player (static/player.js) under the dashboard's Content-Security-Policy, served by `videoconverter web`:

- hls.js plays master.m3u8 with its separate audio (two languages: the audio menu switches them), shows the
  caption's cues when chosen in the captions menu, and plays each rung when forced;
- dash.js plays manifest.mpd with audio and the text track, and plays each rung when forced.

The package is made by the real code (``produce_ladder``, real FFmpeg) from a 6 s clip with two audio tracks and
a WebVTT caption, and stored in the rendition's bucket as a worker would. The players are the ones the package
vendors; tests/browser/package-lock.json pins the same versions for the other browser tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_dashboard import browser, serving  # noqa: F401 - browser: the fixture, shared
from tests.web.conftest import TOKEN

KEY = "clip.mp4"
PREFIX = f"/api/outputs/hls/{KEY}/"
HEIGHTS = (144, 180)
# The clip's audio tracks (tagged eng, fra) as each player reports them: hls.js as the manifest names them,
# dash.js normalised to BCP 47's shortest form.
HLS_LANGUAGES = ("eng", "fra")
DASH_LANGUAGES = ("en", "fr")
PAGE_PATH = "/package-playback-test"  # answered by the test itself (page.route), on the app's origin
PLAYER_TIMEOUT_MS = 15_000
CONFIG = """
[[renditions]]
name = "hls"
kind = "hls"
ladder = [144, 180]
segment_seconds = 2
keyframe_interval_seconds = 1
preset = "ultrafast"
target_vmaf = 0
"""
CUE_TEXT = "Hello from the captions"
CUES = f"WEBVTT\n\n00:00:00.000 --> 00:00:05.900\n{CUE_TEXT}\n"
# As the dashboard signs in: the token goes into an HttpOnly cookie, which the players' requests then carry.
SIGN_IN = """
token => fetch('/api/session', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                body: JSON.stringify({token})}).then(r => { if (!r.ok) throw new Error(r.status); })
"""
START = """
out => { document.getElementById('player').append(window.streamPlayer(out, 'hls')); }
"""
VIDEO = "document.querySelector('video.stream')"
PLAYING_PAST = f"t => {VIDEO}.currentTime > t"
# The segment requests of the page so far (URLs), from Resource Timing: it sees every fetch, whenever it began.
REQUESTED = "() => performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
COMPRESSION = r"""() => Object.fromEntries(performance.getEntriesByType('resource')
  .filter(e => e.name.endsWith('/master.m3u8') || /\/[0-9]+p\/seg_00000\.m4s$/.test(e.name))
  .map(e => [e.name.split('/').pop(), [e.encodedBodySize, e.decodedBodySize]]))"""
SHOWING_CUES = f"""
text => Array.from({VIDEO}.textTracks).some(t => t.mode === 'showing' && t.cues &&
  Array.from(t.cues).some(c => c.text === text))
"""


def two_language_clip(path: Path) -> Path:
    """6 s of 320x180 with two audio tracks, English (440 Hz) and French (660 Hz)."""
    from videoconverter.transcode.runner import ffmpeg_executable

    subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=6",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-f", "lavfi", "-i", "sine=frequency=660:duration=6",
         "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def publish_package(config_path: Path, workdir: Path) -> list[str]:
    """Make the package with the worker's code and store it under ``KEY/`` in the rendition's bucket, marker
    last; the names written."""
    from videoconverter.config import load_config
    from videoconverter.pipeline import open_services
    from videoconverter.transcode.captions import Caption
    from videoconverter.transcode.ladder import produce_ladder
    from videoconverter.transcode.probe import probe
    from videoconverter.transcode.produce import output_key
    from videoconverter.transcode.products import Conversion, Runner
    from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg

    config = load_config(environ={}, path=config_path)
    rendition = config.rendition("hls")
    source = two_language_clip(workdir / KEY)
    captions = workdir / "clip.en.vtt"
    captions.write_text(CUES, encoding="utf-8")
    jobdir = workdir / "job"
    jobdir.mkdir()
    run: Runner = lambda args, _duration: run_ffmpeg(args, workdir=jobdir, timeout_seconds=120)  # noqa: E731
    caption = Caption("en", "English", captions, "clip.en.vtt")
    job = Conversion(ffmpeg_executable(), source, probe(source, config.limits), jobdir, config.limits, run, "v1",
                     captions=(caption,))  # fmt: skip
    produced = produce_ladder(rendition, job)
    svc = open_services(config)
    try:
        for file in produced.files:
            svc.store.put_file(rendition.output_bucket, output_key(KEY, file.name), file.path)
    finally:
        svc.close()
    return [file.name for file in produced.files]


@pytest.fixture(scope="module")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`videoconverter web` (no workers) whose ``hls`` bucket holds a real package of :data:`KEY`."""
    root = tmp_path_factory.mktemp("package-playback")
    with serving(root, CONFIG, command="web") as url:
        names = publish_package(root / "videoconverter.toml", root)
        assert {"master.m3u8", "manifest.mpd", "v1/subs/s0-en/captions.vtt", "v1/audio/a1-fra/init.mp4"} <= set(names)
        yield url


def open_player(browser: Any, server: str) -> tuple[Any, list[str]]:  # noqa: F811 - browser: the fixture
    """A page on the server's origin with the dashboard's policy and player.js, signed in, the player started
    on the package (HLS first, as on the job page); the page and the console errors it collects."""
    from videoconverter.web.guard import CONTENT_SECURITY_POLICY

    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    body = (
        '<!doctype html><html><head><link rel="icon" href="data:,"><script src="/static/player.js"></script>'
        '</head><body><div id="player"></div>'
    )
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    page.route(server + PAGE_PATH, lambda route: route.fulfill(body=body, content_type="text/html", headers=headers))
    page.goto(server + PAGE_PATH)
    page.evaluate(SIGN_IN, TOKEN)
    out = {"kind": "hls", "url": PREFIX + "master.m3u8", "dash_url": PREFIX + "manifest.mpd", "etag": "e", "size": 1}
    page.evaluate(START, out)
    return page, errors


def diagnostics(page: Any) -> str:
    state = page.evaluate(
        f"""() => {{ const v = {VIDEO}; const p = v && v.streamPlayer;
          return {{ kind: p && p.kind, time: v && v.currentTime, height: v && v.videoHeight,
                    error: v && v.error && v.error.message,
                    problem: document.querySelector('[role=status]').textContent,
                    tracks: v ? Array.from(v.textTracks).map(t => [t.label, t.mode, t.cues && t.cues.length]) : [],
                    requested: ({REQUESTED})().slice(-30) }}; }}"""
    )
    return json.dumps(state)


# Asks to play again while paused. A player may attach its source just after it says it is ready (dash.js after an
# engine switch), which aborts a play() that came first ("interrupted by a new load request"); a user would click
# play again.
PLAY_PAST = f"t => {{ const v = {VIDEO}; if (v.paused) v.play().catch(() => {{}}); return v.currentTime > t; }}"


def play_past(page: Any, what: str, seconds: float) -> None:
    """Play the page's video until it is past ``seconds``; on timeout, fail with the player's state."""
    wait_for(page, PLAY_PAST, what, seconds)


def wait_for(page: Any, condition: str, what: str, arg: object = None) -> None:
    """Wait for ``condition`` (a JavaScript function of ``arg``); on timeout, fail with the player's state."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=PLAYER_TIMEOUT_MS)
    except Exception as error:
        if type(error).__name__ != "TimeoutError":
            raise
        pytest.fail(f"timed out waiting for {what}; state: {diagnostics(page)}")


def requested(page: Any) -> list[str]:
    paths: list[str] = page.evaluate(REQUESTED)
    return paths


def segments_since(page: Any, count: int, folder: str) -> str:
    """A condition: a media segment of ``KEY/v1/<folder>/`` requested after the first ``count`` requests."""
    return f"() => ({REQUESTED})().slice({count}).some(p => p.startsWith('{PREFIX}v1/{folder}/seg_'))"


def plays_rung(page: Any, force: str, height: int) -> None:
    """Force the rung of ``height`` with ``force`` (JavaScript run with the height), then see its segments
    requested, its pictures shown and playback go on."""
    before = len(requested(page))
    page.evaluate(force, height)
    wait_for(page, segments_since(page, before, f"{height}p"), f"segments of the {height}p rung")
    wait_for(page, f"h => {VIDEO}.videoHeight === h", f"{height}-pixel-high pictures", height)
    time = page.evaluate(f"{VIDEO}.currentTime")
    wait_for(page, PLAYING_PAST, f"playback past {time + 0.5:.2f} s at {height}p", time + 0.5)


def rungs_to_force(page: Any) -> list[int]:
    """Every rung's height, the one showing last: forcing it first would load nothing new."""
    showing = page.evaluate(f"{VIDEO}.videoHeight")
    return sorted(HEIGHTS, key=lambda height: height == showing)


def menu(page: Any, selector: str) -> list[str]:
    labels: list[str] = page.eval_on_selector_all(f"{selector} option", "options => options.map(o => o.textContent)")
    return labels


def check_captions(page: Any) -> None:
    """The captions menu lists off and English; choosing English shows its cues."""
    wait_for(page, "() => document.querySelector('select.captions').options.length === 2", "the captions menu")
    assert menu(page, "select.captions") == ["off", "English"]
    assert not page.is_hidden("select.captions")
    page.select_option("select.captions", label="English")
    wait_for(page, SHOWING_CUES, "caption cues showing", CUE_TEXT)


HLS_FORCE = (
    f"h => {{ const hls = {VIDEO}.streamPlayer.hls; hls.currentLevel = hls.levels.findIndex(l => l.height === h); }}"
)
DASH_FORCE = f"""h => {{ const dash = {VIDEO}.streamPlayer.dash;
  // A forced rung: no automatic switching, and no cap to the player's size, which hides the larger rung.
  const abr = {{ autoSwitchBitrate: {{ video: false }}, limitBitrateByPortal: false }};
  dash.updateSettings({{ streaming: {{ abr }} }});
  const index = dash.getRepresentationsByType('video').findIndex(r => r.height === h);
  dash.setRepresentationForTypeByIndex('video', index, true);
  // The whole clip is buffered by now: play it again from the start, so that the new rung's segments load.
  {VIDEO}.currentTime = 0; {VIDEO}.play(); }}"""


@pytest.mark.ffmpeg
@pytest.mark.slow
def test_hls_js_plays_the_package_with_audio_captions_and_every_rung(
    browser: Any,  # noqa: F811 - the fixture imported above
    package_server: str,
) -> None:
    page, errors = open_player(browser, package_server)
    wait_for(page, f"() => {VIDEO}.streamPlayer && {VIDEO}.streamPlayer.kind === 'hls'", "hls.js")
    wait_for(page, f"() => {VIDEO}.streamPlayer.hls.levels.length === 2", "the master's two rungs")
    heights = page.evaluate(f"{VIDEO}.streamPlayer.hls.levels.map(l => l.height)")
    assert sorted(heights) == list(HEIGHTS)
    play_past(page, "playback to start", 0.3)

    # Separate audio: both languages announced and in the audio menu, the first one's segments decoded.
    assert page.evaluate(f"{VIDEO}.streamPlayer.hls.audioTracks.map(t => t.lang)") == list(HLS_LANGUAGES)
    assert len(menu(page, "select.audio")) == 2 and not page.is_hidden("select.audio")
    assert any(p.startswith(PREFIX + "v1/audio/a0-") and "/seg_" in p for p in requested(page))
    wait_for(page, f"() => {VIDEO}.webkitAudioDecodedByteCount > 0", "decoded audio")
    before = len(requested(page))
    page.select_option("select.audio", index=1)
    wait_for(page, segments_since(page, before, "audio/a1-fra"), "segments of the second audio track")
    assert page.evaluate(f"{VIDEO}.streamPlayer.hls.audioTrack") == 1

    check_captions(page)
    assert any(p == PREFIX + "v1/subs/s0-en/captions.vtt" for p in requested(page))
    # The playlists came gzip-compressed (Resource Timing: fewer bytes on the wire than decoded); segments not
    # (the first segment of whichever rung hls.js started on: its bandwidth estimate picks it).
    sizes = page.evaluate(COMPRESSION)
    assert sizes["master.m3u8"][0] < sizes["master.m3u8"][1], sizes
    assert sizes["seg_00000.m4s"][0] == sizes["seg_00000.m4s"][1], sizes
    for height in rungs_to_force(page):
        plays_rung(page, HLS_FORCE, height)
    for height in HEIGHTS:
        assert any(p.startswith(f"{PREFIX}v1/{height}p/seg_") for p in requested(page)), height
    assert errors == []
    page.close()


@pytest.mark.ffmpeg
@pytest.mark.slow
def test_dash_js_plays_the_package_with_audio_text_and_every_rung(
    browser: Any,  # noqa: F811 - the fixture imported above
    package_server: str,
) -> None:
    page, errors = open_player(browser, package_server)
    wait_for(page, f"() => {VIDEO}.streamPlayer && {VIDEO}.streamPlayer.kind === 'hls'", "hls.js first")
    assert menu(page, "select.engine") == ["HLS", "DASH"]
    page.select_option("select.engine", "dash")
    wait_for(page, f"() => {VIDEO}.streamPlayer && {VIDEO}.streamPlayer.kind === 'dash'", "dash.js")
    wait_for(page, "() => document.querySelector('select.audio').options.length === 2", "the audio menu")
    play_past(page, "playback to start", 0.3)

    assert page.evaluate(f"{VIDEO}.streamPlayer.dash.getTracksFor('audio').map(t => t.lang)") == list(DASH_LANGUAGES)
    assert any(p.startswith(PREFIX + "v1/audio/a") and "/seg_" in p for p in requested(page))
    wait_for(page, f"() => {VIDEO}.webkitAudioDecodedByteCount > 0", "decoded audio")

    check_captions(page)
    for height in rungs_to_force(page):
        plays_rung(page, DASH_FORCE, height)
    assert errors == []
    page.close()


@pytest.mark.ffmpeg
@pytest.mark.slow
def test_the_job_page_plays_an_hls_output_with_its_menus(
    browser: Any,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Through the dashboard itself: a worker's package of an upload, on its job page, plays in the player."""
    from tests.browser.test_hls_playback import finished_job, upload
    from tests.conftest import wait_until
    from videoconverter.transcode.samples import make_clip

    with serving(tmp_path, CONFIG) as url:
        upload(url, make_clip(tmp_path / KEY, width=320, height=180, seconds=4, frame_rate=30))
        job = wait_until(lambda: finished_job(url), 60, 0.1, "the HLS job")
        assert isinstance(job, dict) and job["state"] == "done", job
        assert job["output_object"]["dash_url"] == PREFIX + "manifest.mpd"
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.fill("#token", TOKEN)
        page.click("#signin-form button")
        page.wait_for_selector("#signin", state="hidden")
        page.goto(f"{url}/#/job/{KEY}")
        wait_for(page, f"() => {VIDEO} && {VIDEO}.streamPlayer && {VIDEO}.streamPlayer.kind === 'hls'", "the player")
        assert menu(page, "select.engine") == ["HLS", "DASH"]
        assert page.is_hidden("select.captions") and page.is_hidden("select.audio")  # no captions, one audio track
        play_past(page, "HLS playback on the job page", 0.5)
        page.select_option("select.engine", "dash")
        wait_for(page, f"() => {VIDEO}.streamPlayer && {VIDEO}.streamPlayer.kind === 'dash'", "dash.js")
        play_past(page, "DASH playback on the job page", 0.5)
        assert page.locator(".stream-player").count() == 1
        assert errors == []
        page.close()


@pytest.mark.parametrize(
    ("vendored", "installed"),
    [
        ("hls.min.js", "hls.js/dist/hls.min.js"),
        ("dash.mediaplayer.min.js", "dashjs/dist/modern/umd/dash.mediaplayer.min.js"),
    ],
)
def test_the_vendored_players_are_the_pinned_npm_builds(vendored: str, installed: str) -> None:
    """static/players holds, byte for byte, the builds package-lock.json pins (installed by `make test`)."""
    from tests.conftest import require_service

    modules = Path(__file__).resolve().parent / "node_modules"
    require_service((modules / installed).is_file(), f"no {installed} (needs npm): run `npm ci --prefix tests/browser`")
    static = Path(__file__).resolve().parents[2] / "src" / "videoconverter" / "web" / "static" / "players"
    assert (static / vendored).read_bytes() == (modules / installed).read_bytes()
