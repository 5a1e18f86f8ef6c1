"""The real `videoconverter` command as a subprocess: what a user types, what a script parses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until
from videoconverter.jobs.timeline import STAGES
from videoconverter.jobs.timeline import parse_iso_time as seconds_since_epoch

pytestmark = pytest.mark.ffmpeg


def run(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "videoconverter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"videoconverter {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def env(tiny_config_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    # A port of its own for `up`'s dashboard: tests run in parallel, and another `up` may hold 8080.
    return {**clean, "VIDEOCONVERTER_CONFIG": str(tiny_config_path), "VIDEOCONVERTER_PORT": str(free_port())}


def test_the_readme_workflow(env: dict[str, str], small_clip: Path, tmp_path: Path) -> None:
    log = tmp_path / "up.log"  # a file, not a pipe: nobody reads a pipe while the test runs, and it could fill
    with log.open("w") as sink:
        up = subprocess.Popen([sys.executable, "-m", "videoconverter", "up"], env=env, stderr=sink)

    def provisioned() -> bool:
        if up.poll() is not None:
            pytest.fail(f"`up` exited {up.returncode} before provisioning the buckets: {log.read_text()}")
        return run(env, "ls", "s3://videoconverter-input", check=False).returncode == 0

    try:
        wait_until(provisioned, 90, message="`up` to provision the buckets")  # a loaded 2-core machine is slow
        copied = json.loads(run(env, "cp", str(small_clip), "s3://videoconverter-input/", "--json").stdout)
        assert copied["key"] == "small.mp4" and copied["size"] == small_clip.stat().st_size
        waited = run(env, "jobs", "--wait", "120", "--json")
        jobs = json.loads(waited.stdout)["jobs"]
        assert {(j["rendition"], j["state"]) for j in jobs} == {("small", "done"), ("smaller", "done")}
        assert all(j["source_etag"] == copied["etag"] and j["attempts"] == 1 for j in jobs)
        for job in jobs:  # every stage, in order, from the upload (0 s) to done, as finished_at says
            seconds = job["timeline_seconds"]
            assert list(job["timeline"]) == list(seconds) == list(STAGES), job["timeline"]
            assert seconds["uploaded"] == 0 and list(seconds.values()) == sorted(seconds.values())
            assert abs(seconds["done"] - (job["finished_at"] - seconds_since_epoch(job["timeline"]["uploaded"]))) < 2e-3
        listed = json.loads(run(env, "ls", "s3://videoconverter-output-small", "--json").stdout)
        assert [o["key"] for o in listed] == ["small.mp4"]
        run(env, "cp", "s3://videoconverter-output-small/small.mp4", str(tmp_path / "local.mp4"))
        assert (tmp_path / "local.mp4").stat().st_size == listed[0]["size"]
        logs = run(env, "logs", "small.mp4").stdout
        assert "queued for small" in logs and "done: s3://videoconverter-output-small/small.mp4" in logs
        assert "timeline: publish " in logs and ", FFmpeg " in logs and "(upload to done " in logs
        table = run(env, "jobs").stdout
        assert "small.mp4" in table and "done" in table
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        stderr = log.read_text()
        print(f"`up` wrote:\n{stderr}")  # shown when the test fails
    assert up.returncode == 0, stderr
    assert "Traceback" not in stderr
    cores = len(os.sched_getaffinity(0))  # the default pool: one worker per core, each serving every rendition
    assert f"pool: {cores} worker process(es) on {cores} cores, each serving small, smaller" in stderr


def test_failed_jobs_show_in_the_dlq_and_jobs_wait_exits_3(env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("definitely not a video")
    run(env, "provision")
    run(env, "cp", str(junk), "s3://videoconverter-input/junk.mp4")
    run(env, "worker", "small", "--exit-when-idle")
    run(env, "worker", "smaller", "--exit-when-idle")
    waited = run(env, "jobs", "junk.mp4", "--wait", "5", "--json", check=False)
    assert waited.returncode == 3
    assert "2 job(s) failed" in waited.stderr
    assert all(
        j["state"] == "failed" and "not a readable video" in j["error"] for j in json.loads(waited.stdout)["jobs"]
    )
    letters = json.loads(run(env, "dlq", "list", "--json").stdout)
    assert sorted(d["rendition"] for d in letters) == ["small", "smaller"]
    redriven = json.loads(run(env, "dlq", "redrive", "small", "--json").stdout)
    assert redriven == [{"rendition": "small", "redriven": 1, "jobs_requeued": 1}]


def test_dlq_redrive_of_one_message_id_moves_it_and_requeues_only_its_job(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "provision")
    for name in ("junk-a.mp4", "junk-b.mp4"):
        (tmp_path / name).write_text("definitely not a video")
        run(env, "cp", str(tmp_path / name), f"s3://videoconverter-input/{name}")
    run(env, "worker", "small", "--exit-when-idle")
    letters = json.loads(run(env, "dlq", "list", "small", "--json").stdout)
    by_key = {json.loads(d["body"])["Records"][0]["s3"]["object"]["key"]: d["message_id"] for d in letters}
    assert sorted(by_key) == ["junk-a.mp4", "junk-b.mp4"]

    redriven = run(env, "dlq", "redrive", "small", "--message-id", by_key["junk-b.mp4"], "--json")
    assert json.loads(redriven.stdout) == [{"rendition": "small", "redriven": 1, "jobs_requeued": 1}]
    assert [d["message_id"] for d in json.loads(run(env, "dlq", "list", "--json").stdout)] == [by_key["junk-a.mp4"]]
    states = {(j["key"], j["rendition"]): j["state"] for j in json.loads(run(env, "jobs", "--json").stdout)["jobs"]}
    assert states[("junk-b.mp4", "small")] == "queued"
    assert states[("junk-a.mp4", "small")] == "failed"

    unknown = run(env, "dlq", "redrive", "--message-id", "no-such-id", "--json", check=False)
    assert unknown.returncode == 1 and "no dead letter with id 'no-such-id'" in unknown.stderr
    assert json.loads(unknown.stdout) == [
        {"rendition": "small", "redriven": 0, "jobs_requeued": 0},
        {"rendition": "smaller", "redriven": 0, "jobs_requeued": 0},
    ]


def test_jobs_wait_times_out_with_exit_4(env: dict[str, str], small_clip: Path) -> None:
    run(env, "provision")
    run(env, "cp", str(small_clip), "s3://videoconverter-input/waiting.mp4")  # no worker runs
    result = run(env, "jobs", "--wait", "0.5", check=False)
    assert result.returncode == 4 and "still pending" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cp", "/no/such/file.mp4", "s3://videoconverter-input/"], "is not a file"),
        (["cp", "s3://videoconverter-input/missing.mp4", "x.mp4"], "no object"),
        (["ls", "s3://no-such-bucket"], "run `videoconverter provision`"),
        (["worker", "4k"], "unknown rendition '4k'"),
        (["cp", "a", "b"], "one side must be each"),
        (["logs", "nothing.mp4"], "no log lines"),
    ],
)
def test_errors_are_one_clear_line_without_a_traceback(env: dict[str, str], args: list[str], expected: str) -> None:
    run(env, "provision")
    result = run(env, *args, check=False)
    assert result.returncode in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videoconverter: error:"), result.stderr
    assert expected in lines[0]


def test_a_bad_config_names_the_field_and_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[queues]\nmessage_retention_seconds = 5\n")
    result = run({**env, "VIDEOCONVERTER_CONFIG": str(bad)}, "jobs", check=False)
    assert result.returncode == 2
    assert "queues.message_retention_seconds" in result.stderr and "Traceback" not in result.stderr


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2), result
    assert len(lines) == 1 and lines[0].startswith("videoconverter: error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("variables", "args", "expected"),
    [
        ({"VIDEOCONVERTER_FFMPEG_THREADS": "²"}, ["jobs"], "VIDEOCONVERTER_FFMPEG_THREADS: expected a whole number"),
        ({"VIDEOCONVERTER_PORT": "99999"}, ["jobs"], "VIDEOCONVERTER_PORT: expected a whole number from 1 to 65535"),
        (
            {"VIDEOCONVERTER_JOBS": "postgresql://u:hunter2@[::1/db"},
            ["jobs"],
            "VIDEOCONVERTER_JOBS: 'postgresql://u:***@",
        ),
        ({"VIDEOCONVERTER_JOBS": "postgresql://u:hunter2@127.0.0.1:1/db"}, ["jobs"], "cannot connect to PostgreSQL"),
        ({"VIDEOCONVERTER_BROKER": "amqp://"}, ["jobs"], "VIDEOCONVERTER_BROKER: 'amqp://' names no host"),
        ({}, ["up", "--port", "70000"], "--port: expected a whole number from 1 to 65535, got 70000"),
        ({}, ["web", "--port", "٨٠"], "--port: expected a whole number"),
        ({}, ["jobs", "--wait", "nan"], "--wait: expected a number at least 0"),
        ({}, ["up", "--pool", "0"], "--pool: expected at least 1 worker process, got 0"),
        ({}, ["up", "--pool", "2", "--workers", "1"], "--pool runs workers for every rendition"),
        ({}, ["up", "--max", "2"], "--min and --max go with --workers auto"),
        ({}, ["worker"], "name the rendition to serve"),
        ({}, ["worker", "--all", "small"], "name renditions or give --all, not both"),
        ({}, ["worker", "small", "smaller", "--max", "2"], "--max scales the workers of one rendition"),
        ({}, ["worker", "small", "4k"], "unknown rendition '4k'"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(
    env: dict[str, str], variables: dict[str, str], args: list[str], expected: str
) -> None:
    result = run({**env, **variables}, *args, check=False, timeout=60)
    assert result.returncode == 2
    line = one_error_line(result)
    assert expected in line and "hunter2" not in result.stderr


def test_a_config_file_that_is_not_utf8_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[input]\nbucket = "caf\xe9"\n')
    line = one_error_line(run({**env, "VIDEOCONVERTER_CONFIG": str(latin1)}, "jobs", check=False))
    assert "latin1.toml is not UTF-8 text (byte 21)" in line


def test_cp_right_after_up_needs_no_provisioning_on_the_embedded_store(env: dict[str, str], small_clip: Path) -> None:
    """`videoconverter up &` then `cp` at once: `cp` may win the race, and must not depend on it."""
    copied = json.loads(run(env, "cp", str(small_clip), "s3://videoconverter-input/", "--json").stdout)
    assert copied["key"] == "small.mp4"
    jobs = json.loads(run(env, "jobs", "--json").stdout)["jobs"]
    assert {(j["rendition"], j["state"]) for j in jobs} == {("small", "queued"), ("smaller", "queued")}
    run(env, "provision")  # what `up` does when it gets there: nothing to undo, nothing lost
    run(env, "worker", "small", "--exit-when-idle")
    states = {j["rendition"]: j["state"] for j in json.loads(run(env, "jobs", "small.mp4", "--json").stdout)["jobs"]}
    assert states == {"small": "done", "smaller": "queued"}


def test_cp_into_a_bucket_that_is_not_configured_says_so(env: dict[str, str], small_clip: Path) -> None:
    line = one_error_line(run(env, "cp", str(small_clip), "s3://no-such-bucket/", check=False))
    assert "'no-such-bucket' does not exist and is not one of this configuration's buckets" in line
    line = one_error_line(run(env, "cp", str(small_clip), "s3://videoconverter-output-small/", check=False))
    assert "run `videoconverter provision` with this same configuration" in line


def test_cp_normalises_the_key_and_refuses_look_alikes(env: dict[str, str], small_clip: Path, tmp_path: Path) -> None:
    nfd = tmp_path / "cafe\u0301.mp4"
    nfd.write_bytes(small_clip.read_bytes())
    copied = json.loads(run(env, "cp", str(nfd), "s3://videoconverter-input/", "--json").stdout)
    again = json.loads(run(env, "cp", str(small_clip), "s3://videoconverter-input/caf\u00e9.mp4", "--json").stdout)
    assert copied["key"] == again["key"] == "caf\u00e9.mp4"  # one object, not two
    assert [o["key"] for o in json.loads(run(env, "ls", "s3://videoconverter-input", "--json").stdout)] == ["café.mp4"]
    assert {j["key"] for j in json.loads(run(env, "jobs", "--json").stdout)["jobs"]} == {"café.mp4"}
    line = one_error_line(run(env, "cp", str(small_clip), "s3://videoconverter-input/x\u202e4pm.exe", check=False))
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in line


def test_cp_of_long_names_works_up_to_the_file_name_limit(
    env: dict[str, str], small_clip: Path, tmp_path: Path
) -> None:
    key = "k" * 251 + ".mp4"  # 255 bytes: the store's sidecar and cp's partial download add nothing to it
    run(env, "cp", str(small_clip), f"s3://videoconverter-input/{key}")
    (tmp_path / "down").mkdir()
    run(env, "cp", f"s3://videoconverter-input/{key}", str(tmp_path / "down") + "/")
    assert [p.name for p in (tmp_path / "down").iterdir()] == [key]
    result = run(env, "cp", str(small_clip), "s3://videoconverter-input/" + "k" * 252 + ".mp4", check=False)
    assert "path segment of 256 bytes; the limit is 255" in one_error_line(result)
    assert len(json.loads(run(env, "ls", "s3://videoconverter-input", "--json").stdout)) == 1


def test_ls_skips_a_planted_symlink_with_a_warning(env: dict[str, str], small_clip: Path, tmp_path: Path) -> None:
    run(env, "cp", str(small_clip), "s3://videoconverter-input/")
    os.symlink("/etc/passwd", tmp_path / "data" / "buckets" / "videoconverter-input" / "planted.mp4")
    result = run(env, "ls", "s3://videoconverter-input", "--json")
    assert [o["key"] for o in json.loads(result.stdout)] == ["small.mp4"]
    assert "planted.mp4" in result.stderr and "symbolic link" in result.stderr


def test_an_unknown_backend_scheme_gets_a_hint(env: dict[str, str]) -> None:
    result = run({**env, "VIDEOCONVERTER_BROKER": "sqlit://x.db"}, "jobs", check=False)
    assert result.returncode == 2 and "Did you mean sqlite://" in result.stderr


def test_secrets_in_urls_never_reach_the_output(env: dict[str, str]) -> None:
    result = run({**env, "VIDEOCONVERTER_BROKER": "amqp://guest:hunter2@127.0.0.1/"}, "jobs", check=False)
    assert result.returncode != 0 and "hunter2" not in result.stderr + result.stdout


def test_help_is_everywhere(env: dict[str, str]) -> None:
    for command in ["up", "worker", "cp", "ls", "jobs", "logs", "dlq", "provision", "demo"]:
        assert "usage: videoconverter " + command in run(env, command, "--help").stdout
    assert "VIDEOCONVERTER_DATA_DIR" in run(env, "--help").stdout


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except FileNotFoundError:
        return set()


def _command_line(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_up_restarts_a_dead_worker_and_its_workers_stop_with_it(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "videoconverter", "up", "--no-reconcile", "--pool", "2"]
    up = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        # A child just forked still shows `up`'s command line until it execs: wait for two workers that each
        # serve every rendition and the standby, and for nothing else to be there.
        def roles() -> list[str]:
            return sorted(_command_line(p).split(" worker ")[-1].split(" --no-provision")[0] for p in _children(up.pid))

        wait_until(lambda: roles() == ["--all", "--all", "--standby"], 30, message="two pool workers and a standby")
        (standby,) = [p for p in _children(up.pid) if "--standby" in _command_line(p)]
        victim = min(p for p in _children(up.pid) if p != standby)
        os.kill(victim, signal.SIGKILL)
        # The standby takes the dead worker's place (its command line stays), and a new standby waits behind it.
        wait_until(
            lambda: roles() == ["--all", "--standby", "--standby"] and victim not in _children(up.pid),
            30,
            message="the killed worker to be replaced by the standby, and a new standby",
        )
        assert standby in _children(up.pid)
        replaced = _children(up.pid)
        up.kill()  # `up` dies without a chance to stop its workers: they stop by themselves
        up.wait(timeout=10)
        wait_until(lambda: not any(_alive(p) for p in replaced), 30, message="the workers to stop after `up` died")
    finally:
        if up.poll() is None:
            up.kill()


def test_jobs_lists_the_newest_a_page_at_a_time(env: dict[str, str], tiny_config_path: Path) -> None:
    from videoconverter.jobs.base import JobId
    from videoconverter.jobs.sqlite import SQLiteJobStore

    run(env, "provision")
    store = SQLiteJobStore(tiny_config_path.parent / "data" / "jobs.sqlite3")
    for i in range(5):
        store.enqueue(JobId(f"clip-{i}.mp4", "e", "small"))
    store.fail(JobId("broken.mp4", "e", "smaller"), "the upload is not a readable video file")
    store.close()
    first = json.loads(run(env, "jobs", "--limit", "4", "--json").stdout)
    assert [j["key"] for j in first["jobs"]] == ["broken.mp4", "clip-4.mp4", "clip-3.mp4", "clip-2.mp4"]
    rest = json.loads(run(env, "jobs", "--limit", "4", "--cursor", first["next_cursor"], "--json").stdout)
    assert ([j["key"] for j in rest["jobs"]], rest["next_cursor"]) == (["clip-1.mp4", "clip-0.mp4"], None)
    table = run(env, "jobs", "--limit", "1")
    assert "broken.mp4" in table.stdout and "more: videoconverter jobs --limit 1 --cursor " in table.stderr
    failed = json.loads(run(env, "jobs", "--state", "failed", "--rendition", "smaller", "--json").stdout)
    assert [j["key"] for j in failed["jobs"]] == ["broken.mp4"]
    assert [j["key"] for j in json.loads(run(env, "jobs", "--prefix", "clip-4", "--json").stdout)["jobs"]] == [
        "clip-4.mp4"
    ]
    assert json.loads(run(env, "jobs", "clip-0.mp4", "--json").stdout)["next_cursor"] is None
    for args, expected in (
        (["--cursor", "bogus"], "cursor:"),
        (["--limit", "0"], "limit:"),
        (["--rendition", "4k"], "unknown rendition '4k'"),
        (["clip-0.mp4", "--limit", "2"], "leave out --limit"),
    ):
        result = run(env, "jobs", *args, check=False)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_jobs_wait_waits_on_pending_jobs_only(env: dict[str, str], tiny_config_path: Path) -> None:
    from videoconverter.jobs.base import JobId
    from videoconverter.jobs.sqlite import SQLiteJobStore

    run(env, "provision")
    store = SQLiteJobStore(tiny_config_path.parent / "data" / "jobs.sqlite3")
    store.fail(JobId("old-failure.mp4", "e", "small"), "not a video")  # history: not waited on
    waited = run(env, "jobs", "--wait", "5", "--json")
    assert [j["key"] for j in json.loads(waited.stdout)["jobs"]] == ["old-failure.mp4"]
    store.enqueue(JobId("stuck.mp4", "e", "small"))
    store.close()
    pending = run(env, "jobs", "--wait", "0.5", check=False)
    assert pending.returncode == 4 and "still pending" in pending.stderr
