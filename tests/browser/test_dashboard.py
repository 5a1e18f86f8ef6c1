"""The dashboard in real headless Chromium (Debian's, driven by Playwright), against `videoconverter up`:
sign in, upload through the page, watch both renditions finish, play the 720p output, redrive a dead letter."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, interrupt, require_service, wait_until
from tests.web.conftest import TOKEN
from tests.web.test_streamed_upload import healthy

CHROMIUM = os.environ.get("VIDEOCONVERTER_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs"
CONFIG = """
[queues]
visibility_timeout_seconds = 10
max_receive_count = 2
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
short_side = 720
x264_preset = "ultrafast"

[[renditions]]
name = "small"
short_side = 120
x264_preset = "ultrafast"
"""


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path, CONFIG) as url:
        yield url


@contextlib.contextmanager
def serving(tmp_path: Path, renditions_toml: str, command: str = "up") -> Iterator[str]:
    """`videoconverter up` (or ``command``: `web` runs no workers) with an API token on ``renditions_toml``
    (embedded backends under tmp_path): its URL."""
    config = tmp_path / "videoconverter.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n' + renditions_toml)
    port = free_port()
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config), "VIDEOCONVERTER_API_TOKEN": TOKEN}
    up = subprocess.Popen([sys.executable, "-m", "videoconverter", command, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url) or up.poll() is not None, 30, 0.1, f"videoconverter {command}")
        assert up.poll() is None
        yield url
    finally:
        code = interrupt(up)
    assert code == 0


@pytest.fixture
def web_only(tmp_path: Path) -> Iterator[str]:
    """`videoconverter web`: the dashboard without workers, so that jobs stay queued."""
    with serving(tmp_path, CONFIG, command="web") as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    require_service(shutil.which(CHROMIUM) is not None, f"no Chromium at {CHROMIUM}")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield chromium
        chromium.close()


@pytest.mark.ffmpeg
@pytest.mark.slow
def test_upload_watch_play_and_redrive(dashboard: str, browser: Any, tmp_path: Path) -> None:
    from videoconverter.transcode.samples import make_clip

    clip = make_clip(tmp_path / "beach.mp4", width=1280, height=720, seconds=1)
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000)  # looks like an MP4, is none
    shots = SCREENSHOTS if os.environ.get("VIDEOCONVERTER_SCREENSHOTS") else tmp_path
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(dashboard)

    page.fill("#token", TOKEN)
    page.click("#signin-form button")
    page.wait_for_selector("#signin", state="hidden")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("text=uploaded: 2 job(s) queued")
    row = page.locator('tr[data-key="beach.mp4"]')
    for rendition in ("720p", "small"):
        row.locator(f'.rendition[data-rendition="{rendition}"][data-state="done"]').wait_for(timeout=30_000)

    page.set_input_files("#file", str(fake))
    page.locator('tr[data-key="broken.mp4"] .rendition[data-state="failed"]').first.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => document.querySelectorAll('tr[data-key=\"broken.mp4\"] [data-state=failed]').length == 2"
    )
    page.screenshot(path=str(shots / "dashboard.png"))
    check_paging_and_filters(browser, dashboard)

    page.click('tr[data-key="beach.mp4"] a')
    video = page.locator('video[data-rendition="720p"]')
    video.wait_for()
    page.evaluate("document.querySelector('video[data-rendition=\"720p\"]').muted = true")
    page.evaluate("document.querySelector('video[data-rendition=\"720p\"]').play()")
    page.wait_for_function(
        "() => document.querySelector('video[data-rendition=\"720p\"]').currentTime > 0.3", timeout=15_000
    )
    assert video.evaluate("v => v.videoWidth") == 1280
    assert video.evaluate("v => v.videoHeight") == 720
    assert page.locator(".facts", has_text="1280x720 h264").count() == 1
    page.evaluate("document.querySelectorAll('video').forEach(v => { v.pause(); v.currentTime = 0.5; })")
    page.wait_for_timeout(300)  # let the seek paint the frame for the screenshot only
    page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)

    page.goto(dashboard + "/#/job/broken.mp4")
    page.wait_for_selector("text=This is not a video we can read")

    page.goto(dashboard + "/#/dead-letters")
    page.wait_for_selector("#dead-letters td >> text=broken.mp4")
    page.wait_for_function("() => document.querySelectorAll('#dead-letters tbody tr').length == 2")
    with page.expect_request(lambda request: "message_id=" in request.url and request.method == "POST"):
        page.locator("#dead-letters tbody tr").first.locator("button.redrive-one").click()
    page.wait_for_selector("text=Moved 1 message(s) back to their queues.")
    # The workers fail the redriven message again soon: redrive all moves one or two.
    page.evaluate("document.querySelector('#redrive-result').textContent = ''")
    page.click("#redrive-all")
    page.wait_for_function("() => /^Moved [12] message/.test(document.querySelector('#redrive-result').textContent)")

    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    sign_in(phone, dashboard)  # another browser context: reads need the token too
    phone.wait_for_selector('tr[data-key="beach.mp4"] [data-state="done"]')
    phone.screenshot(path=str(shots / "dashboard-phone.png"))
    assert errors == []


def watched(page: Any) -> list[str]:
    """The page's uncaught errors and console errors (a refusal by the Content-Security-Policy is one)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def sign_in(page: Any, url: str) -> None:
    page.goto(url)
    page.fill("#token", TOKEN)
    page.click("#signin-form button")
    page.wait_for_selector("#signin", state="hidden")


def put_upload(url: str, key: str) -> None:
    body = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    request = urllib.request.Request(
        f"{url}/api/uploads/{key}", data=body, method="PUT", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 201


def test_a_malformed_job_link_shows_a_message_and_the_page_keeps_updating(
    web_only: str, browser: Any, tmp_path: Path
) -> None:
    page = browser.new_page()
    errors = watched(page)
    sign_in(page, web_only)
    clip = tmp_path / "first.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    page.set_input_files("#file", str(clip))  # under the page's policy, with the header writes need
    page.wait_for_selector("text=uploaded: 2 job(s) queued")

    page.goto("about:blank")
    page.goto(web_only + "/#/job/%E0%A4%A")  # "%A" ends in the middle of an escape: no text decodes from it
    page.wait_for_selector("#bad-link >> text=This job link is malformed")
    page.wait_for_selector("#queues >> text=720p: 1 waiting")
    put_upload(web_only, "later.mp4")  # the live updates go on: the queue depths change on this page
    page.wait_for_selector("#queues >> text=720p: 2 waiting")
    page.click("text=← all jobs")
    page.wait_for_selector('tr[data-key="later.mp4"]')
    put_upload(web_only, "latest.mp4")
    page.wait_for_selector('tr[data-key="latest.mp4"]')
    assert page.locator("#problem").is_hidden()
    assert errors == []


def check_paging_and_filters(browser: Any, dashboard: str) -> None:
    """Pages of two jobs: broken.mp4's two (the newest), then 'Load more' brings beach.mp4's; the filters ask the
    API again (by state, rendition, key prefix), under the page's policy (no inline style, no console error)."""
    listing = browser.new_page(viewport={"width": 1280, "height": 860})
    errors = watched(listing)
    rows = "document.querySelectorAll('#jobs tbody tr')"
    sign_in(listing, dashboard + "/?page_size=2")  # another browser context: it signs in too
    listing.wait_for_selector('tr[data-key="broken.mp4"]')
    assert listing.locator("#jobs tbody tr").count() == 1 and listing.locator("#load-more").is_visible()
    assert listing.locator("#jobs-count").text_content() == "2 of 4 job(s) shown"
    listing.click("#load-more")
    listing.wait_for_selector('tr[data-key="beach.mp4"]')
    listing.wait_for_function("() => document.querySelector('#load-more').hidden")
    with listing.expect_request(lambda request: "state=failed" in request.url):
        listing.select_option("#filter-state", "failed")
    listing.wait_for_function(f"() => {rows}.length == 1 && {rows}[0].dataset.key == 'broken.mp4'")
    listing.select_option("#filter-state", "")
    with listing.expect_request(lambda request: "key_prefix=bea" in request.url):
        listing.fill("#filter-prefix", "bea")
    listing.wait_for_function(f"() => {rows}.length == 1 && {rows}[0].dataset.key == 'beach.mp4'")
    listing.select_option("#filter-rendition", "small")
    listing.wait_for_function("() => document.querySelectorAll('tr[data-key=\"beach.mp4\"] .rendition').length == 1")
    assert listing.locator('tr[data-key="beach.mp4"] .rendition').get_attribute("data-rendition") == "small"
    assert errors == [], errors
    listing.close()


def test_a_split_job_shows_its_pieces_done_of_planned(web_only: str, browser: Any, tmp_path: Path) -> None:
    from videoconverter.jobs.sqlite import SQLiteJobStore

    put_upload(web_only, "long.mp4")  # no workers: the jobs stay as this test writes them
    store = SQLiteJobStore(tmp_path / "data" / "jobs.sqlite3")
    job = next(r.id for r in store.find("long.mp4") if r.id.rendition == "720p")
    store.start(job, 1)
    store.plan_pieces(job, 4)  # three video pieces and the audio
    store.piece_done(job, 0)
    store.close()
    page = browser.new_page()
    errors = watched(page)
    sign_in(page, web_only)
    page.wait_for_selector('tr[data-key="long.mp4"] .rendition[data-rendition="720p"] >> text=1/4')
    page.goto(web_only + "/#/job/long.mp4")
    page.wait_for_selector('.card[data-rendition="720p"] .facts >> text=pieces 1 of 4 done')
    assert page.locator('.card[data-rendition="small"] .facts', has_text="pieces").count() == 0  # converted whole
    assert errors == []
