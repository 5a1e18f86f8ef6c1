"""The HLS ladder plays in real headless Chromium (Debian's, driven by Playwright) through hls.js, served by
`videoconverter up`: both rungs are announced, playback advances, and forced switches load and play each rung.

hls.js comes from npm (tests/browser/package-lock.json); `make test` installs it when npm exists."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_dashboard import browser, serving  # noqa: F401 - browser: the fixture, shared
from tests.conftest import require_service, wait_until
from tests.web.conftest import TOKEN

HLS_JS = Path(__file__).resolve().parent / "node_modules" / "hls.js" / "dist" / "hls.min.js"
KEY = "clip.mp4"
MASTER_URL = f"/api/outputs/hls/{KEY}/master.m3u8"
HEIGHTS = (144, 180)  # the ladder's rungs, as hls.js's levels 0 and 1 (the master playlist lists the lowest first)
PAGE_PATH = "/hls-playback-test"  # answered by the test itself (page.route), so the page is on the app's origin
JOB_TIMEOUT_SECONDS = 60
PLAYER_TIMEOUT_MS = 10_000
CONFIG = """
[queues]
visibility_timeout_seconds = 10
max_receive_count = 2
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
name = "hls"
kind = "hls"
ladder = [144, 180]
segment_seconds = 2
keyframe_interval_seconds = 1
preset = "ultrafast"
"""
PAGE = "<!doctype html><html><body><video muted playsinline width=320 height=180></video></body></html>"
# Every hls.js event the test asserts on lands in window.hls_log; hls itself is window.hls.
PLAYER = """
(masterUrl) => {
  const log = { levels: [], switched: [], fragments: [], errors: [] };
  window.hls_log = log;
  const video = document.querySelector('video');
  const hls = new Hls({ startLevel: 0, capLevelToPlayerSize: false });
  window.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    log.levels = data.levels.map(level => ({ width: level.width, height: level.height }));
    video.play();
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => log.switched.push(data.level));
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => log.fragments.push({ level: data.frag.level, sn: data.frag.sn }));
  hls.on(Hls.Events.ERROR, (_, data) => log.errors.push({ fatal: data.fatal, type: data.type, details: data.details }));
  hls.loadSource(masterUrl);
  hls.attachMedia(video);
}
"""
# As the dashboard signs in: the token goes into an HttpOnly cookie, which hls.js's requests then carry.
SIGN_IN = """
token => fetch('/api/session', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                body: JSON.stringify({token})}).then(r => { if (!r.ok) throw new Error(r.status); })
"""
PLAYING_PAST = "t => document.querySelector('video').currentTime > t"


@pytest.fixture
def hls_js() -> Path:
    """hls.js's build, which `make test` installs from npm: skips without it, fails under CI=true."""
    require_service(HLS_JS.is_file(), f"no hls.js at {HLS_JS} (needs npm): run `npm ci --prefix tests/browser`")
    return HLS_JS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`videoconverter up` (embedded backends) with one HLS rendition: a two-rung ladder of 2 s segments."""
    with serving(tmp_path, CONFIG) as url:
        yield url


def upload(url: str, path: Path) -> None:
    request = urllib.request.Request(
        f"{url}/api/uploads/{KEY}",
        data=path.read_bytes(),
        method="PUT",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "video/mp4"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201


def finished_job(url: str) -> dict[str, Any] | None:
    """The HLS job once it is done or failed; None while it is queued or running."""
    request = urllib.request.Request(f"{url}/api/jobs/{KEY}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        jobs: list[dict[str, Any]] = json.load(reply)["jobs"]
    return next((job for job in jobs if job["state"] in ("done", "failed")), None)


def log(page: Any) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate("window.hls_log")
    return value


def wait_for(page: Any, condition: str, what: str, arg: object = None) -> None:
    """Wait for ``condition`` (a JavaScript function of ``arg``) in the page; on timeout, fail with hls.js's log."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=PLAYER_TIMEOUT_MS)
    except Exception as error:
        if type(error).__name__ != "TimeoutError":
            raise
        pytest.fail(f"timed out waiting for {what}; hls.js log: {json.dumps(log(page))}")


def switch_to(page: Any, level: int) -> None:
    """Force ``level`` now (hls.js flushes the buffer and loads that rung), then check that the switch happens,
    a fragment of that rung loads, its pictures show and playback goes on."""
    seen = page.evaluate(
        """level => {
          const seen = { switched: window.hls_log.switched.length, fragments: window.hls_log.fragments.length,
                         time: document.querySelector('video').currentTime };
          window.hls.currentLevel = level;
          return seen;
        }""",
        level,
    )
    after = {"level": level, **seen}
    switched = "a => window.hls_log.switched.slice(a.switched).includes(a.level)"
    wait_for(page, switched, f"LEVEL_SWITCHED to {level}", after)
    wait_for(
        page,
        "a => window.hls_log.fragments.slice(a.fragments).some(f => f.level === a.level)",
        f"FRAG_LOADED of level {level}",
        after,
    )
    shown = "h => document.querySelector('video').videoHeight === h"
    wait_for(page, shown, f"{HEIGHTS[level]}-pixel-high pictures on level {level}", HEIGHTS[level])
    wait_for(page, PLAYING_PAST, f"playback past {seen['time'] + 0.5:.2f} s on level {level}", seen["time"] + 0.5)


@pytest.mark.ffmpeg
@pytest.mark.slow
def test_hls_ladder_plays_and_switches_rungs_in_hls_js(
    hls_js: Path,
    browser: Any,  # noqa: F811 - the fixture imported above
    server: str,
    tmp_path: Path,
) -> None:
    from videoconverter.transcode.samples import make_clip

    upload(server, make_clip(tmp_path / KEY, width=320, height=180, seconds=6, frame_rate=30))
    job = wait_until(lambda: finished_job(server), JOB_TIMEOUT_SECONDS, 0.1, "the HLS job")
    assert isinstance(job, dict) and job["state"] == "done", job

    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.route(server + PAGE_PATH, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
    page.goto(server + PAGE_PATH)
    page.evaluate(SIGN_IN, TOKEN)
    page.add_script_tag(path=str(hls_js))
    assert page.evaluate("Hls.isSupported()")
    page.evaluate(PLAYER, server + MASTER_URL)

    wait_for(page, "() => window.hls_log.levels.length > 0", "MANIFEST_PARSED")
    assert log(page)["levels"] == [{"width": 256, "height": HEIGHTS[0]}, {"width": 320, "height": HEIGHTS[1]}]
    wait_for(page, PLAYING_PAST, "playback to start", 0.3)
    switch_to(page, 1)
    switch_to(page, 0)

    final = log(page)
    assert set(final["switched"]) == {0, 1}
    assert [e for e in final["errors"] if e["fatal"]] == [], final["errors"]
    assert page_errors == []
    page.evaluate("window.hls.destroy()")
