"""Every endpoint of the HTTP API, through FastAPI's test client (no workers: jobs stay queued unless a test
runs one)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import TOKEN
from videoconverter.errors import ConfigError
from videoconverter.web_settings import WebSettings


def put(client: Any, key: str, body: bytes, auth: dict[str, str]) -> Any:
    return client.put(f"/api/uploads/{key}", content=body, headers=auth)


def convert_all(client: Any) -> None:
    from videoconverter.worker import Worker

    for rendition in client.svc.config.renditions:
        Worker(client.svc, rendition).run(exit_when_idle=True)


def test_upload_queues_one_job_per_rendition_without_workers(client: Any, auth: dict, small_clip: Path) -> None:
    reply = put(client, "holiday/clip.mp4", small_clip.read_bytes(), auth)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["bucket"], body["key"], body["size"]) == (
        "videoconverter-input",
        "holiday/clip.mp4",
        small_clip.stat().st_size,
    )
    assert sorted((j["rendition"], j["state"]) for j in body["jobs"]) == [("small", "queued"), ("smaller", "queued")]
    listed = client.get("/api/jobs", params={"rendition": "small"}, headers=auth).json()
    assert listed["total"] == 1 and listed["jobs"][0]["key"] == "holiday/clip.mp4"
    assert client.get("/api/jobs", params={"state": "done"}, headers=auth).json()["total"] == 0
    first = client.get("/api/jobs", params={"limit": 1}, headers=auth).json()
    second = client.get("/api/jobs", params={"limit": 1, "cursor": first["next_cursor"]}, headers=auth).json()
    assert (len(second["jobs"]), second["total"], second["next_cursor"]) == (1, 2, None)
    assert {first["jobs"][0]["rendition"], second["jobs"][0]["rendition"]} == {"small", "smaller"}
    queues = client.get("/api/queues", headers=auth).json()["queues"]
    assert {q["rendition"]: q["visible"] for q in queues} == {"small": 1, "smaller": 1}


@pytest.mark.parametrize(
    ("key", "body", "headers", "status", "code"),
    [
        ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"x" * 100, {}, 401, "unauthorized"),
        (
            "clip.mp4",
            b"\x00\x00\x00\x18ftypmp42" + b"x" * 100,
            {"Authorization": "Bearer wrong-token-000000"},
            401,
            "unauthorized",
        ),
        ("notes.txt", b"\x00\x00\x00\x18ftypmp42", None, 415, "unsupported_type"),
        ("clip.mp4", b"hello, this is text, not a video", None, 415, "not_a_video"),
        ("clip.mp4", b"", None, 400, "empty"),
        ("a/%2E%2E/b.mp4", b"\x00\x00\x00\x18ftypmp42", None, 400, "invalid_key"),
        ("a//b.mp4", b"\x00\x00\x00\x18ftypmp42", None, 400, "invalid_key"),
        ("big.mp4", b"\x00\x00\x00\x18ftypmp42" + b"x" * 5_000_000, None, 413, "too_large"),
    ],
)
def test_bad_uploads_get_clear_json_errors_and_store_nothing(
    client: Any, auth: dict, key: str, body: bytes, headers: dict | None, status: int, code: str
) -> None:
    reply = client.put(f"/api/uploads/{key}", content=body, headers=auth if headers is None else headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code and reply.json()["error"]["message"]
    assert list(client.svc.store.list("videoconverter-input")) == []
    assert TOKEN not in reply.text


def test_a_too_large_streamed_body_without_length_is_cut_off(client: Any, auth: dict) -> None:
    def body() -> Any:
        yield b"\x00\x00\x00\x18ftypmp42"
        for _ in range(6):
            yield b"x" * 1_000_000

    reply = client.put("/api/uploads/stream.mp4", content=body(), headers=auth)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large"
    assert list(client.svc.store.list("videoconverter-input")) == []
    assert list((client.svc.config.data_dir / "buckets" / ".tmp").iterdir()) == []


@pytest.mark.ffmpeg
def test_detail_outputs_ranges_posters_and_metrics(client: Any, auth: dict, small_clip: Path) -> None:
    assert put(client, "clip.mp4", small_clip.read_bytes(), auth).status_code == 201
    convert_all(client)
    detail = client.get("/api/jobs/clip.mp4", headers=auth).json()
    assert [j["state"] for j in detail["jobs"]] == ["done", "done"]
    small = next(j for j in detail["jobs"] if j["rendition"] == "small")
    out = small["output_object"]
    assert out["url"] == "/api/outputs/small/clip.mp4" and small["timings"]["ran_seconds"] >= 0
    assert (out["probe"]["height"], out["probe"]["video_codec"], out["probe"]["has_audio"]) == (120, "h264", True)
    assert any("done" in line["message"] for line in detail["logs"])

    assert client.get(out["url"]).status_code == 401  # media needs the token
    whole = client.get(out["url"], headers=auth)
    assert whole.status_code == 200 and len(whole.content) == out["size"] and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = client.get(out["url"], headers={**auth, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{out['size']}"
    tail = client.get(out["url"], headers={**auth, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    open_end = client.get(out["url"], headers={**auth, "Range": f"bytes={out['size'] - 5}-"})
    assert open_end.content == whole.content[-5:]
    beyond = client.get(out["url"], headers={**auth, "Range": f"bytes={out['size']}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{out['size']}"
    head = client.head(out["url"], headers=auth)
    assert head.status_code == 200 and head.headers["content-length"] == str(out["size"])
    download = client.get(out["url"], params={"download": "true"}, headers=auth)
    assert "attachment" in download.headers["content-disposition"]
    assert client.get("/api/outputs/small/missing.mp4", headers=auth).status_code == 404
    assert client.get("/api/outputs/nosuch/clip.mp4", headers=auth).json()["error"]["code"] == "bad_request"

    # The cookie the dashboard gets at sign-in works for <video> and <img>, which send no header.
    assert client.post("/api/session", json={"token": "wrong-token-000000"}).status_code == 401
    assert client.post("/api/session", json={"token": TOKEN}).status_code == 204
    poster = client.get(out["poster_url"])
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
    assert client.delete("/api/session", headers={"X-Requested-With": "test"}).status_code == 204
    client.cookies.clear()

    metrics = client.get("/metrics", headers=auth).text
    assert 'videoconverter_jobs{rendition="small",state="done"} 1.0' in metrics
    assert 'videoconverter_queue_messages{rendition="small",state="visible"} 0.0' in metrics
    assert 'videoconverter_job_duration_seconds_count{rendition="small"} 1.0' in metrics
    assert 'videoconverter_dead_letter_messages{rendition="small"} 0.0' in metrics


@pytest.mark.ffmpeg
def test_dead_letters_are_listed_explained_and_redriven(client: Any, auth: dict) -> None:
    fake = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000  # passes the signature check, is no video
    assert put(client, "fake.mp4", fake, auth).status_code == 201
    convert_all(client)
    job = client.get("/api/jobs/fake.mp4", headers=auth).json()["jobs"][0]
    assert job["state"] == "failed" and job["cause"] == "not_a_video"
    assert "not a video" in job["explanation"] and "dead-letter" in job["explanation"]
    letters = client.get("/api/dead-letters", headers=auth).json()["dead_letters"]
    assert sorted(d["rendition"] for d in letters) == ["small", "smaller"] and letters[0]["key"] == "fake.mp4"
    failures = client.get("/metrics", headers=auth).text
    assert 'videoconverter_job_failures_total{cause="not_a_video",rendition="small"} 1.0' in failures
    assert client.post("/api/dead-letters/redrive").status_code == 401
    one = client.post("/api/dead-letters/redrive", params={"rendition": "small"}, headers=auth).json()
    assert one == {"redriven": [{"rendition": "small", "redriven": 1, "jobs_requeued": 1}]}
    assert [d["rendition"] for d in client.get("/api/dead-letters", headers=auth).json()["dead_letters"]] == ["smaller"]
    rest = client.post("/api/dead-letters/redrive", headers=auth).json()["redriven"]
    assert [r["redriven"] for r in rest] == [0, 1]
    assert {j["state"] for j in client.get("/api/jobs/fake.mp4", headers=auth).json()["jobs"]} == {"queued"}


@pytest.mark.ffmpeg
def test_one_dead_letter_is_redriven_by_its_id(client: Any, auth: dict) -> None:
    fake = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000  # passes the signature check, is no video
    for name in ("one.mp4", "two.mp4"):
        assert put(client, name, fake, auth).status_code == 201
    convert_all(client)
    letters = client.get("/api/dead-letters", params={"rendition": "small"}, headers=auth).json()["dead_letters"]
    by_key = {d["key"]: d["message_id"] for d in letters}
    assert sorted(by_key) == ["one.mp4", "two.mp4"]
    chosen = {"rendition": "small", "message_id": by_key["two.mp4"]}
    assert client.post("/api/dead-letters/redrive", params=chosen).status_code == 401
    moved = client.post("/api/dead-letters/redrive", params=chosen, headers=auth).json()
    assert moved == {"redriven": [{"rendition": "small", "redriven": 1, "jobs_requeued": 1}]}
    left = client.get("/api/dead-letters", headers=auth).json()["dead_letters"]
    assert sorted((d["rendition"], d["key"]) for d in left) == [
        ("small", "one.mp4"),
        ("smaller", "one.mp4"),
        ("smaller", "two.mp4"),
    ]
    states = {(j["rendition"], j["state"]) for j in client.get("/api/jobs/two.mp4", headers=auth).json()["jobs"]}
    assert states == {("small", "queued"), ("smaller", "failed")}
    again = client.post("/api/dead-letters/redrive", params=chosen, headers=auth)
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    unknown = client.post("/api/dead-letters/redrive", params={"message_id": "no-such-id"}, headers=auth)
    assert unknown.status_code == 404


def test_health_settings_schema_dashboard_and_unknown_routes(client: Any, auth: dict) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/api/settings").status_code == 401
    settings = client.get("/api/settings", headers=auth).json()
    assert settings["token_required"] and settings["authorized"] and settings["suffixes"] == [".mp4"]
    schema = client.get("/openapi.json").json()
    assert {"/api/uploads/{key}", "/api/jobs", "/api/events", "/api/dead-letters/redrive", "/metrics"} <= set(
        schema["paths"]
    )
    page = client.get("/")
    assert page.status_code == 200 and "<video" not in page.text and 'src="/static/app.js"' in page.text
    assert client.get("/static/app.js").status_code == 200
    missing = client.get("/api/nothing-here", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/api/jobs/none.mp4", headers=auth).status_code == 404
    assert client.get("/api/jobs", params={"state": "bogus"}, headers=auth).json()["error"]["code"] == "invalid_query"
    assert client.get("/api/jobs", params={"limit": 0}, headers=auth).status_code == 400


def test_events_stream_job_changes_from_one_shared_poller(client: Any, auth: dict, small_clip: Path) -> None:
    live = client.app.state.live
    live.interval_seconds = 0.05
    frames: list[str] = []
    got_job = threading.Event()

    def listen() -> None:
        with client.stream("GET", "/api/events", headers=auth) as stream:
            for line in stream.iter_lines():
                frames.append(line)
                if line.startswith("data:") and '"jobs"' in line:
                    got_job.set()
                    return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert put(client, "live.mp4", small_clip.read_bytes(), auth).status_code == 201
    assert got_job.wait(10), frames
    assert "event: jobs" in frames and any('"key":"live.mp4"' in f for f in frames)
    reader.join(5)


def test_without_a_token_only_loopback_is_served() -> None:
    from videoconverter.web.auth import check_bind

    open_settings = WebSettings()
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, open_settings)
    with pytest.raises(ConfigError, match="VIDEOCONVERTER_API_TOKEN"):
        check_bind("0.0.0.0", open_settings)
    check_bind("0.0.0.0", WebSettings(api_token=TOKEN))


def test_range_parsing() -> None:
    from videoconverter.web.errors import ApiError
    from videoconverter.web.media import ByteRange, parse_range

    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-", 100) == ByteRange(0, 100)
    assert parse_range("bytes=10-1000", 100) == ByteRange(10, 90)
    assert parse_range("bytes=-30", 100) == ByteRange(70, 30)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole object
    assert parse_range("items=0-1", 100) is None
    for bad in ("bytes=100-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(ApiError) as caught:
            parse_range(bad, 100)
        assert caught.value.status == 416


def test_detail_of_a_ladder_and_of_thumbnails_points_at_their_marker_and_poster(
    tiny_config: Any, small_clip: Path
) -> None:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services, provision
    from videoconverter.renditions import default_rendition
    from videoconverter.web.app import create_app
    from videoconverter.worker import Worker

    hls = replace(default_rendition(120, kind="hls"), ladder=(90, 120), preset="ultrafast")
    thumbs = replace(default_rendition(120, kind="thumbnails"), thumbnail_interval_seconds=1.0, thumbnail_width=64)
    config = replace(tiny_config, renditions=(hls, thumbs))
    svc = open_services(config)
    provision(svc)
    try:
        # Without a token the server answers loopback names only, and writes need a header a form cannot send.
        with TestClient(create_app(config, svc), base_url="http://127.0.0.1:8080") as client:
            written = client.put(
                "/api/uploads/clip.mp4", content=small_clip.read_bytes(), headers={"X-Requested-With": "test"}
            )
            assert written.status_code == 201
            for rendition in config.renditions:
                Worker(svc, rendition).run(exit_when_idle=True)
            jobs = {j["rendition"]: j for j in client.get("/api/jobs/clip.mp4").json()["jobs"]}
            ladder, pictures = jobs["hls"]["output_object"], jobs["thumbnails"]["output_object"]
            assert (ladder["kind"], ladder["url"]) == ("hls", "/api/outputs/hls/clip.mp4/master.m3u8")
            assert ladder["dash_url"] == "/api/outputs/hls/clip.mp4/manifest.mpd"
            assert client.get(ladder["dash_url"]).headers["content-type"] == "application/dash+xml"
            master = client.get(ladder["url"])
            assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
            assert master.text.startswith("#EXTM3U") and len(master.content) == ladder["size"]
            assert (pictures["kind"], pictures["url"]) == ("thumbnails", "/api/outputs/thumbnails/clip.mp4/index.json")
            poster = client.get(pictures["poster_url"])
            assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
    finally:
        svc.close()


def test_a_sidecar_caption_upload_is_stored_and_queued_without_a_video_signature(client: Any, auth: dict) -> None:
    caption = b"1\n00:00:00,500 --> 00:00:01,500\nHello\n"  # text: never "like a video"
    reply = client.put("/api/uploads/talk.en.srt", content=caption, headers=auth)
    assert reply.status_code == 201, reply.text
    assert reply.json()["key"] == "talk.en.srt" and reply.json()["size"] == len(caption)
    assert {job["rendition"] for job in reply.json()["jobs"]} == {"small", "smaller"}


def test_a_sidecar_caption_over_the_caption_limit_is_refused(client: Any, auth: dict) -> None:
    from videoconverter.transcode.captions import MAX_CAPTION_BYTES

    reply = client.put("/api/uploads/talk.vtt", content=b"WEBVTT\n" + b"x" * MAX_CAPTION_BYTES, headers=auth)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large", reply.text
    assert list(client.svc.store.list("videoconverter-input")) == []
