"""Configuration: defaults, the TOML file, environment overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoconverter.config import MAX_RETRY_DELAY_SECONDS, Config, load_config
from videoconverter.errors import ConfigError
from videoconverter.renditions import DEFAULT_TARGET_VMAF, default_video_kbps


@pytest.fixture(autouse=True)
def _no_local_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, so a ./videoconverter.toml of the developer's never leaks in."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


def load_toml(tmp_path: Path, text: str, **env: str) -> Config:
    path = tmp_path / "videoconverter.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(environ={"VIDEOCONVERTER_CONFIG": str(path), **env})


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path, text)
    return str(info.value)


# --- defaults ------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    config = load_config(environ={})
    assert config.input_bucket == "videoconverter-input"
    assert config.input_suffixes == (".mp4",)
    assert config.topic == "videoconverter-topic"
    assert config.message_retention_seconds == 1_209_600
    assert config.max_receive_count == 5
    assert config.log_level == "INFO"
    assert config.data_dir == Path("vc-data")
    assert config.storage_url == "file://vc-data/buckets"
    assert config.broker_url == "sqlite://vc-data/broker.sqlite3"
    assert config.jobs_url == "sqlite://vc-data/jobs.sqlite3"


def test_default_renditions() -> None:
    config = load_config(environ={})
    assert [r.name for r in config.renditions] == ["720p", "1080p"]
    r720, r1080 = config.renditions
    assert (r720.short_side, r720.queue, r720.output_bucket) == (
        720,
        "videoconverter_720p",
        "videoconverter-output-720p",
    )
    assert (r1080.short_side, r1080.queue, r1080.output_bucket) == (
        1080,
        "videoconverter_1080p",
        "videoconverter-output-1080p",
    )
    # Quality per title: each aims at a VMAF target (bench/quality.py --per-title), capped at Elastic Transcoder's
    # Generic 720p / 1080p rates; with a fixed CRF the caps would be 78 % and 80 % of those.
    assert (r720.target_vmaf, r1080.target_vmaf) == (DEFAULT_TARGET_VMAF[720], DEFAULT_TARGET_VMAF[1080])
    assert (r720.max_video_bitrate_kbps, r1080.max_video_bitrate_kbps) == (2400, 5400)
    assert (default_video_kbps(720), default_video_kbps(1080)) == (1870, 4320)
    assert r720.dead_letter_queue == "videoconverter_720p-dlq"
    assert config.rendition("1080p") is r1080


def test_unknown_rendition_lists_the_configured_ones() -> None:
    with pytest.raises(ConfigError, match=r"'480p'.*720p, 1080p"):
        load_config(environ={}).rendition("480p")


def test_local_file_is_read_when_no_path_is_given(tmp_path: Path) -> None:
    (Path.cwd() / "videoconverter.toml").write_text('[input]\ntopic = "local-topic"\n', encoding="utf-8")
    assert load_config(environ={}).topic == "local-topic"


# --- the TOML file -------------------------------------------------------------------------------------------


def test_file_settings_are_loaded(tmp_path: Path) -> None:
    config = load_toml(
        tmp_path,
        """
data_dir = "/srv/vc"
log_level = "debug"

[input]
bucket = "uploads"
suffixes = [".mp4", ".mov"]
topic = "uploads-topic"

[queues]
message_retention_seconds = 3600
visibility_timeout_seconds = 120
max_receive_count = 3
receive_wait_seconds = 5
retry_base_delay_seconds = 2.5

[ffmpeg]
threads = 4

[limits]
max_duration_seconds = 600
allowed_input_formats = ["mp4"]
""",
    )
    assert config.data_dir == Path("/srv/vc")
    assert config.storage_url == "file:///srv/vc/buckets"
    assert config.log_level == "DEBUG"
    assert config.input_bucket == "uploads"
    assert config.input_suffixes == (".mp4", ".mov")
    assert config.topic == "uploads-topic"
    assert config.message_retention_seconds == 3600
    assert config.visibility_timeout_seconds == 120
    assert config.max_receive_count == 3
    assert config.receive_wait_seconds == 5.0
    assert isinstance(config.receive_wait_seconds, float)
    assert config.retry_base_delay_seconds == 2.5
    assert config.ffmpeg_threads == 4
    assert config.limits.max_duration_seconds == 600
    assert config.limits.allowed_input_formats == ("mp4",)


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(environ={"VIDEOCONVERTER_CONFIG": str(missing)})


def test_explicit_path_argument(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[input]\nbucket = "from-path"\n', encoding="utf-8")
    assert load_config(environ={}, path=path).input_bucket == "from-path"


# --- environment overrides -----------------------------------------------------------------------------------


def test_data_dir_changes_default_urls() -> None:
    config = load_config(environ={"VIDEOCONVERTER_DATA_DIR": "/var/lib/vc"})
    assert config.data_dir == Path("/var/lib/vc")
    assert config.storage_url == "file:///var/lib/vc/buckets"
    assert config.broker_url == "sqlite:///var/lib/vc/broker.sqlite3"
    assert config.jobs_url == "sqlite:///var/lib/vc/jobs.sqlite3"


def test_environment_overrides_urls() -> None:
    config = load_config(
        environ={
            "VIDEOCONVERTER_STORAGE": "file:///s",
            "VIDEOCONVERTER_BROKER": "sqlite:///b.db",
            "VIDEOCONVERTER_JOBS": "sqlite:///j.db",
            "VIDEOCONVERTER_LOG_LEVEL": "warning",
        }
    )
    assert config.storage_url == "file:///s"
    assert config.broker_url == "sqlite:///b.db"
    assert config.jobs_url == "sqlite:///j.db"
    assert config.log_level == "WARNING"


def test_environment_beats_the_file(tmp_path: Path) -> None:
    config = load_toml(
        tmp_path,
        'data_dir = "file-dir"\nbroker = "sqlite://file.db"\nstorage = "file://file-store"\n',
        VIDEOCONVERTER_DATA_DIR="env-dir",
        VIDEOCONVERTER_BROKER="sqlite://env.db",
    )
    assert config.data_dir == Path("env-dir")
    assert config.broker_url == "sqlite://env.db"
    assert config.storage_url == "file://file-store"
    assert config.jobs_url == "sqlite://env-dir/jobs.sqlite3"


# --- renditions are configuration ----------------------------------------------------------------------------


def test_adding_a_rendition(tmp_path: Path) -> None:
    config = load_toml(tmp_path, "[[renditions]]\nshort_side = 480\n")
    assert len(config.renditions) == 1
    (r480,) = config.renditions
    assert r480.name == "480p"
    assert r480.short_side == 480
    assert r480.queue == "videoconverter_480p"
    assert r480.output_bucket == "videoconverter-output-480p"
    assert r480.max_video_bitrate_kbps == 1200  # a VMAF target decides: capped at Elastic Transcoder's rate
    assert config.rendition("480p") is r480


def test_renditions_with_overrides(tmp_path: Path) -> None:
    config = load_toml(
        tmp_path,
        """
[[renditions]]
short_side = 720

[[renditions]]
short_side = 1080

[[renditions]]
name = "mobile"
short_side = 360
crf = 28
keyframe_interval_seconds = 4
""",
    )
    assert [r.name for r in config.renditions] == ["720p", "1080p", "mobile"]
    mobile = config.rendition("mobile")
    assert mobile.queue == "videoconverter_mobile"
    assert mobile.output_bucket == "videoconverter-output-mobile"
    assert mobile.crf == 28
    assert mobile.keyframe_interval_seconds == 4.0
    assert mobile.max_video_bitrate_kbps >= 300  # not a Generic preset size: derived, with a floor


# --- validation: every error names the bad field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[queues]\nmessage_retention_seconds = 59\n", "queues.message_retention_seconds"),
        ("[queues]\nmessage_retention_seconds = 1209601\n", "queues.message_retention_seconds"),
        ("[queues]\nvisibility_timeout_seconds = 0\n", "queues.visibility_timeout_seconds"),
        ("[queues]\nmax_receive_count = 0\n", "queues.max_receive_count"),
        ("[queues]\nreceive_wait_seconds = 21\n", "queues.receive_wait_seconds"),
        ("[queues]\nretry_base_delay_seconds = 901\n", "queues.retry_base_delay_seconds"),
        ('[input]\nbucket = "Bad_Bucket"\n', "input.bucket"),
        ('[input]\nbucket = "ab"\n', "input.bucket"),
        ('[input]\nbucket = "my..bucket"\n', "input.bucket"),
        ("[input]\nsuffixes = []\n", "input.suffixes"),
        ('[input]\ntopic = "bad topic"\n', "input.topic"),
        ('colour = "blue"\n', "colour"),
        ("[input]\nprefix = 'x'\n", "input.prefix"),
        ("[queues]\nretention = 60\n", "queues.retention"),
        ("[ffmpeg]\npath = 'x'\n", "ffmpeg.path"),
        ("[limits]\nmax_size = 1\n", "limits.max_size"),
        ("[[renditions]]\nshort_side = 720\nbitrate = 1\n", "renditions[0].bitrate"),
        ('[queues]\nmax_receive_count = "5"\n', "queues.max_receive_count"),
        ("[queues]\nmax_receive_count = true\n", "queues.max_receive_count"),
        ("[input]\nbucket = 5\n", "input.bucket"),
        ('[input]\nsuffixes = ".mp4"\n', "input.suffixes"),
        ('[limits]\nmax_pixels = "big"\n', "limits.max_pixels"),
        ('[limits]\nallowed_input_formats = "mp4"\n', "limits.allowed_input_formats"),
        ('[[renditions]]\nshort_side = "720"\n', "renditions[0].short_side"),
        ('[[renditions]]\nshort_side = 720\ncrf = "23"\n', "renditions[0].crf"),
        ("[[renditions]]\nshort_side = 720\nupscale = 1\n", "renditions[0].upscale"),
        ("log_level = 5\n", "log_level"),
        ("data_dir = 5\n", "data_dir"),
        ("storage = 5\n", "storage"),
        ("broker = ['sqlite://x']\n", "broker"),
        ("jobs = false\n", "jobs"),
        ("input = 5\n", "input"),
        ('[[renditions]]\nshort_side = 720\noutput_bucket = "videoconverter-input"\n', "renditions[0].output_bucket"),
        (
            '[input]\nbucket = "uploads"\n[[renditions]]\nshort_side = 720\noutput_bucket = "uploads"\n',
            "renditions[0].output_bucket",
        ),
        (
            '[[renditions]]\nshort_side = 720\noutput_bucket = "out"\n[[renditions]]\nshort_side = 1080\n'
            'output_bucket = "out"\n',
            "renditions[1].output_bucket",
        ),
        ("[[renditions]]\nshort_side = 720\n[[renditions]]\nshort_side = 720\n", "renditions[1].name"),
        (
            '[[renditions]]\nshort_side = 720\nqueue = "q"\n[[renditions]]\nshort_side = 1080\nqueue = "q"\n',
            "renditions[1].queue",
        ),
        ("[[renditions]]\nshort_side = 721\n", "renditions[0].short_side"),
        ("[[renditions]]\nshort_side = 8\n", "renditions[0].short_side"),
        ("[[renditions]]\nname = '720p'\n", "renditions[0].short_side"),
        ("[[renditions]]\nshort_side = 720\ncrf = 52\n", "renditions[0].crf"),
        ('[[renditions]]\nshort_side = 720\nqueue = "bad queue"\n', "renditions[0].queue"),
        ("renditions = []\n", "renditions"),
        ('log_level = "LOUD"\n', "log_level"),
        ('[aws]\ndelivery_status_role_arn = "my-role"\n', "aws.delivery_status_role_arn"),
        ('[aws]\ndelivery_status_role_arn = "arn:aws:iam::123:role/r"\n', "aws.delivery_status_role_arn"),
        ('[aws]\ndelivery_status_role_arn = "arn:aws:iam::123456789012:user/u"\n', "aws.delivery_status_role_arn"),
        ("[aws]\ndelivery_status_success_sample_rate = 101\n", "aws.delivery_status_success_sample_rate"),
        ("[aws]\ndelivery_status_success_sample_rate = -1\n", "aws.delivery_status_success_sample_rate"),
        ("[aws]\ndelivery_status_success_sample_rate = 12.5\n", "aws.delivery_status_success_sample_rate"),
        ("[aws]\ndelivery_status_success_sample_rate = true\n", "aws.delivery_status_success_sample_rate"),
        ("[aws]\nsample_rate = 10\n", "aws.sample_rate"),
        ("aws = 5\n", "aws"),
        ("[jobs]\nretention_days = -1\n", "jobs.retention_days"),
        ("[jobs]\nretention_days = 36501\n", "jobs.retention_days"),
        ('[jobs]\nretention_days = "30"\n', "jobs.retention_days"),
        ("[jobs]\nretention_days = 1.5\n", "jobs.retention_days"),
        ("[jobs]\nurl = 5\n", "jobs.url"),
        ("[jobs]\nkeep = 5\n", "jobs.keep"),
    ],
)
def test_validation_error_names_the_field(tmp_path: Path, toml: str, field: str) -> None:
    message = config_error(tmp_path, toml)
    assert message.startswith(field), message


def test_retention_bounds_are_inclusive(tmp_path: Path) -> None:
    assert load_toml(tmp_path, "[queues]\nmessage_retention_seconds = 60\n").message_retention_seconds == 60
    maximum = load_toml(tmp_path, "[queues]\nmessage_retention_seconds = 1209600\n")
    assert maximum.message_retention_seconds == 1_209_600


def test_jobs_retention_is_off_by_default_and_set_in_a_jobs_table(tmp_path: Path) -> None:
    assert load_config(environ={}).job_retention_days == 0
    config = load_toml(tmp_path, '[jobs]\nurl = "sqlite:///j.db"\nretention_days = 30\n')
    assert (config.jobs_url, config.job_retention_days) == ("sqlite:///j.db", 30)
    assert load_toml(tmp_path, "[jobs]\nretention_days = 7\n").jobs_url == "sqlite://vc-data/jobs.sqlite3"
    assert load_toml(tmp_path, 'jobs = "sqlite:///k.db"\n').job_retention_days == 0


def test_the_jobs_environment_variable_overrides_a_jobs_tables_url(tmp_path: Path) -> None:
    config = load_toml(
        tmp_path, '[jobs]\nurl = "sqlite:///j.db"\nretention_days = 30\n', VIDEOCONVERTER_JOBS="sqlite:///env.db"
    )
    assert (config.jobs_url, config.job_retention_days) == ("sqlite:///env.db", 30)


def test_bad_log_level_from_environment() -> None:
    with pytest.raises(ConfigError, match=r"^log_level"):
        load_config(environ={"VIDEOCONVERTER_LOG_LEVEL": "verbose"})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[input\nbucket = \n")
    assert "videoconverter.toml" in message
    assert "not valid TOML" in message


# --- behaviour -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["clip.mp4", "clip.MP4", "a/b/Clip.Mp4", "red flower+1.mp4"])
def test_matches_input_case_insensitively(key: str) -> None:
    assert load_config(environ={}).matches_input(key)


@pytest.mark.parametrize("key", ["clip.mov", "clip.mp4.txt", "mp4", "clip.mp"])
def test_does_not_match_other_suffixes(key: str) -> None:
    assert not load_config(environ={}).matches_input(key)


def test_configured_suffixes_match_case_insensitively(tmp_path: Path) -> None:
    config = load_toml(tmp_path, '[input]\nsuffixes = [".MOV", ".mkv"]\n')
    assert config.matches_input("a.mov")
    assert config.matches_input("a.MKV")
    assert not config.matches_input("a.mp4")


def test_retry_delay_doubles_and_is_capped() -> None:
    config = Config(retry_base_delay_seconds=10.0)
    assert [config.retry_delay_seconds(n) for n in range(1, 6)] == [10.0, 20.0, 40.0, 80.0, 160.0]
    assert config.retry_delay_seconds(7) == 640.0
    assert config.retry_delay_seconds(8) == MAX_RETRY_DELAY_SECONDS == 900
    assert config.retry_delay_seconds(50) == 900.0
    assert config.retry_delay_seconds(5000) == 900.0  # no float overflow on absurd attempt numbers


def test_retry_delay_is_zero_with_zero_base() -> None:
    assert Config(retry_base_delay_seconds=0.0).retry_delay_seconds(10) == 0.0


def test_the_aws_table_names_the_delivery_status_role_and_its_success_sample_rate(tmp_path: Path) -> None:
    assert load_config(environ={}).aws.delivery_status_role_arn == ""  # provision leaves the logging alone
    assert load_config(environ={}).aws.delivery_status_success_sample_rate == 10
    role = "arn:aws-cn:iam::123456789012:role/service-role/videoconverter-sns-logs"
    config = load_toml(
        tmp_path, f'[aws]\ndelivery_status_role_arn = "{role}"\ndelivery_status_success_sample_rate = 0\n'
    )
    assert (config.aws.delivery_status_role_arn, config.aws.delivery_status_success_sample_rate) == (role, 0)
    assert (
        load_toml(
            tmp_path, "[aws]\ndelivery_status_success_sample_rate = 100\n"
        ).aws.delivery_status_success_sample_rate
        == 100
    )


# --- every number's type and range, once (NaN, infinity, fractions, negatives, zero) -------------------------


@pytest.mark.parametrize("name", ["max_pixels", "max_streams", "max_input_bytes", "max_output_bytes"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "2.5", "1.0", "true", '"1"'])
def test_whole_number_limits_are_refused_out_of_range(tmp_path: Path, name: str, value: str) -> None:
    message = config_error(tmp_path, f"[limits]\n{name} = {value}\n")
    assert message.startswith(f"limits.{name}: expected a whole number of at least 1"), message


@pytest.mark.parametrize("name", ["max_duration_seconds", "transcode_timeout_seconds"])
@pytest.mark.parametrize("value", ["-1", "0", "0.0", "nan", "inf", "-inf", "1e300", "true", '"60"'])
def test_second_limits_are_refused_out_of_range(tmp_path: Path, name: str, value: str) -> None:
    message = config_error(tmp_path, f"[limits]\n{name} = {value}\n")
    assert message.startswith(f"limits.{name}: expected a number more than 0"), message


def test_limits_in_range_are_kept(tmp_path: Path) -> None:
    limits = load_toml(tmp_path, "[limits]\ntranscode_timeout_seconds = 0.5\nmax_output_bytes = 1\n").limits
    assert (limits.transcode_timeout_seconds, limits.max_output_bytes) == (0.5, 1)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[queues]\nmax_receive_count = 2.5\n", "queues.max_receive_count"),
        ("[queues]\nvisibility_timeout_seconds = 30.0\n", "queues.visibility_timeout_seconds"),
        ("[queues]\nreceive_wait_seconds = nan\n", "queues.receive_wait_seconds"),
        ("[queues]\nretry_base_delay_seconds = -inf\n", "queues.retry_base_delay_seconds"),
        ("[ffmpeg]\nthreads = -1\n", "ffmpeg.threads"),
        ("[ffmpeg]\nthreads = 1.5\n", "ffmpeg.threads"),
        ("[ffmpeg]\nthreads = 100000\n", "ffmpeg.threads"),
        ("[web]\nport = 70000\n", "web.port"),
        ("[web]\nport = 0\n", "web.port"),
        ("[web]\nport = 80.0\n", "web.port"),
        ("[web]\nmax_upload_bytes = -1\n", "web.max_upload_bytes"),
        ("[web]\nmax_upload_bytes = inf\n", "web.max_upload_bytes"),
        ("[notifications]\nwebhook_timeout_seconds = nan\n", "notifications.webhook_timeout_seconds"),
        ("[notifications]\nwebhook_timeout_seconds = 0\n", "notifications.webhook_timeout_seconds"),
        ("[notifications]\nwebhook_max_attempts = 2.0\n", "notifications.webhook_max_attempts"),
        ("[notifications]\nwebhook_retry_base_delay_seconds = inf\n", "notifications.webhook_retry_base_delay_seconds"),
        (
            '[notifications]\nwebhook_urls = ["https://hooks.example.com:99999/x"]\nwebhook_secret = "s" \n',
            "notifications.webhook_urls",
        ),
        ('[notifications]\nwebhook_urls = ["https://[::1/x"]\n', "notifications.webhook_urls"),
        ('[notifications]\nwebhook_urls = ["https:///x"]\n', "notifications.webhook_urls"),
        (
            "[[renditions]]\nshort_side = 720\nthumbnail_interval_seconds = nan\n",
            "renditions[0].thumbnail_interval_seconds",
        ),
        (
            "[[renditions]]\nkind = 'thumbnails'\nthumbnail_interval_seconds = inf\n",
            "renditions[0].thumbnail_interval_seconds",
        ),
        (
            "[[renditions]]\nshort_side = 720\nkeyframe_interval_seconds = nan\n",
            "renditions[0].keyframe_interval_seconds",
        ),
        (
            "[[renditions]]\nshort_side = 720\nkeyframe_interval_seconds = 0\n",
            "renditions[0].keyframe_interval_seconds",
        ),
        ("[[renditions]]\nshort_side = 720\nmax_video_bitrate_kbps = 2400.5\n", "renditions[0].max_video_bitrate_kbps"),
        ("[[renditions]]\nshort_side = 720\naudio_bitrate_kbps = -128\n", "renditions[0].audio_bitrate_kbps"),
        ("[[renditions]]\nshort_side = 720\nmax_frame_rate = 1000\n", "renditions[0].max_frame_rate"),
        ("[[renditions]]\nshort_side = 720.0\n", "renditions[0].short_side"),
        ("[[renditions]]\nkind = 'hls'\nsegment_seconds = nan\n", "renditions[0].segment_seconds"),
        ("[[renditions]]\nkind = 'hls'\nkeyframe_interval_seconds = 0.0\n", "renditions[0].keyframe_interval_seconds"),
        ('storage = "amqp://"\n', "storage"),
        ('broker = "amqp://"\n', "broker"),
        ('broker = "amqps://:5671/"\n', "broker"),
        ('broker = "amqp://u:p@rabbit:99999/"\n', "broker"),
        ('jobs = "postgresql://u:p@[::1/db"\n', "jobs"),
        ('jobs = "postgresql://u:p@db:port/db"\n', "jobs"),
        ('[jobs]\nurl = "postgresql://u:p@db:port/db"\nretention_days = 3\n', "jobs.url"),
        ('storage = "s3://?endpoint_url=http://[::1:9000"\n', "storage"),
        ('storage = "s3://?endpoint_url=http://localhost:0"\n', "storage"),
    ],
)
def test_numbers_and_urls_out_of_range_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    message = config_error(tmp_path, toml)
    assert message.startswith(field + ":"), message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIDEOCONVERTER_FFMPEG_THREADS", "²"),  # str.isdigit says yes, int() says no
        ("VIDEOCONVERTER_FFMPEG_THREADS", "٣"),  # int() says 3
        ("VIDEOCONVERTER_FFMPEG_THREADS", "-2"),
        ("VIDEOCONVERTER_FFMPEG_THREADS", "2.0"),
        ("VIDEOCONVERTER_PORT", "70000"),
        ("VIDEOCONVERTER_PORT", "٨٠٨٠"),
        ("VIDEOCONVERTER_PORT", "8080x"),
        ("VIDEOCONVERTER_BROKER", "amqp://"),
        ("VIDEOCONVERTER_BROKER", "amqp://guest:guest@/"),
        ("VIDEOCONVERTER_JOBS", "postgresql://u:p@[::1/db"),
        ("VIDEOCONVERTER_STORAGE", "s3://?endpoint_url=http://h:65536"),
        ("VIDEOCONVERTER_WEBHOOK_URLS", "https://ok.example/x, https://bad.example:99999/y"),
    ],
)
def test_environment_values_are_checked_and_named(variable: str, value: str) -> None:
    env = {variable: value, "VIDEOCONVERTER_WEBHOOK_SECRET": "s" * 16}
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert str(info.value).startswith(variable + ":"), info.value


def test_environment_numbers_in_range_are_read() -> None:
    config = load_config(environ={"VIDEOCONVERTER_FFMPEG_THREADS": " 4 ", "VIDEOCONVERTER_PORT": "8081"})
    assert (config.ffmpeg_threads, config.web.port) == (4, 8081)


@pytest.mark.parametrize(
    ("toml", "variable", "field"),
    [
        ("storage = 5\n", "VIDEOCONVERTER_STORAGE", "storage"),
        ('broker = "amqp://"\n', "VIDEOCONVERTER_BROKER", "broker"),
        ("jobs = ['x']\n", "VIDEOCONVERTER_JOBS", "jobs"),
        ("[jobs]\nurl = 5\n", "VIDEOCONVERTER_JOBS", "jobs.url"),
        ("[jobs]\nretention_days = -1\n", "VIDEOCONVERTER_JOBS", "jobs.retention_days"),
        ("data_dir = 5\n", "VIDEOCONVERTER_DATA_DIR", "data_dir"),
        ("log_level = 5\n", "VIDEOCONVERTER_LOG_LEVEL", "log_level"),
        ("[ffmpeg]\nthreads = 'many'\n", "VIDEOCONVERTER_FFMPEG_THREADS", "ffmpeg.threads"),
        ("[web]\nport = 'http'\n", "VIDEOCONVERTER_PORT", "web.port"),
        ("[web]\napi_token = 12345\n", "VIDEOCONVERTER_API_TOKEN", "web.api_token"),
        ("[notifications]\nwebhook_urls = 'https://x'\n", "VIDEOCONVERTER_WEBHOOK_URLS", "notifications.webhook_urls"),
        ("[notifications]\nwebhook_secret = 5\n", "VIDEOCONVERTER_WEBHOOK_SECRET", "notifications.webhook_secret"),
    ],
)
def test_a_file_value_overridden_by_the_environment_is_still_checked(
    tmp_path: Path, toml: str, variable: str, field: str
) -> None:
    values = {
        "VIDEOCONVERTER_STORAGE": "file:///s",
        "VIDEOCONVERTER_BROKER": "sqlite:///b.db",
        "VIDEOCONVERTER_JOBS": "sqlite:///j.db",
        "VIDEOCONVERTER_DATA_DIR": "d",
        "VIDEOCONVERTER_LOG_LEVEL": "INFO",
        "VIDEOCONVERTER_FFMPEG_THREADS": "2",
        "VIDEOCONVERTER_PORT": "8081",
        "VIDEOCONVERTER_API_TOKEN": "t" * 16,
        "VIDEOCONVERTER_WEBHOOK_URLS": "https://hooks.example/x",
        "VIDEOCONVERTER_WEBHOOK_SECRET": "s" * 16,
    }
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path, toml, **{variable: values[variable]})
    assert str(info.value).startswith(field + ":"), info.value


def test_a_config_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "videoconverter.toml"
    path.write_bytes(b'[input]\nbucket = "caf\xe9"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"videoconverter\.toml is not UTF-8 text \(byte 21\)"):
        load_config(environ={"VIDEOCONVERTER_CONFIG": str(path)})
