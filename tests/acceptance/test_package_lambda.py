"""`videoconverter package-lambda` as a subprocess: the artifacts AWS Lambda is given, and how it refuses."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from videoconverter.errors import ConfigError
from videoconverter.serverless.package import lambda_target

JSON_KEYS = {"function", "format", "path", "bytes", "unzipped_bytes", "runtime", "files"}
#: What every Lambda Python runtime provides (boto3 and its closure), linked into a fake /var/runtime.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
CONFIG = '[input]\nbucket = "uploads-for-lambda"\n'


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    return subprocess.run(
        [sys.executable, "-m", "videoconverter", "package-lambda", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def built(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, f"exited {result.returncode}: {result.stderr}"
    output: dict[str, object] = json.loads(result.stdout)
    assert set(output) == JSON_KEYS
    return output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def fake_lambda_runtime(directory: Path) -> Path:
    """A directory holding only what Lambda's Python runtime adds to the path: boto3 and its requirements."""
    directory.mkdir()
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        source = Path(next(iter(spec.submodule_search_locations or []), "") or str(spec.origin))
        (directory / source.name).symlink_to(source)
    return directory


def test_publish_is_a_small_zip_of_videoconverter_and_its_config_that_imports_without_pyav(
    tmp_path: Path, config: Path
) -> None:
    output = built(run(tmp_path, "--function", "publish", "--config", str(config), "--json"))
    archive_path = tmp_path / "dist" / "lambda-publish.zip"
    assert output["function"] == "publish" and output["format"] == "zip"
    assert Path(str(output["path"])) == Path("dist/lambda-publish.zip")
    assert output["bytes"] == archive_path.stat().st_size < 20 * 1024 * 1024
    assert output["runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        assert output["files"] == len(names)
        assert output["unzipped_bytes"] == sum(info.file_size for info in archive.infolist())
        assert archive.read("videoconverter.toml").decode() == CONFIG
        archive.extractall(tmp_path / "task")
    assert "videoconverter/serverless/handlers.py" in names and "videoconverter/cli/main.py" in names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"boto3", "botocore", "s3transfer", "av", "av.libs", "imageio_ffmpeg"}, tops
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    # As on Lambda: the task root, then the runtime's boto3; no site-packages, so PyAV cannot be borrowed.
    runtime = fake_lambda_runtime(tmp_path / "runtime")
    check = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "import videoconverter.serverless.handlers as m\n"
        "assert callable(m.publish_handler), 'publish_handler is not callable'\n"
        "assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "import videoconverter.pipeline, videoconverter.ingest\n"  # what publishing opens: the AWS backends
        "import videoconverter.storage.s3, videoconverter.brokers.sqs, videoconverter.jobs.dynamodb\n"
        "assert 'av' not in sys.modules, 'importing the publish path imported PyAV'\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", check, str(tmp_path / "task"), str(runtime)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_zips_are_deterministic(tmp_path: Path, config: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for path in (first, second):
        built(run(tmp_path, "--function", "publish", "--config", str(config), "--output", str(path), "--json"))
    assert first.read_bytes() == second.read_bytes()


def test_transcode_is_an_image_context_with_an_executable_ffmpeg(tmp_path: Path, config: Path) -> None:
    args = ["--function", "transcode", "--config", str(config), "--output", str(tmp_path / "image"), "--json"]
    result = run(tmp_path, *args)
    if result.returncode != 0:
        # Python 3.11's runtime is Amazon Linux 2 (glibc 2.26); PyAV and FFmpeg wheels for manylinux_2_28 need 2.28.
        assert result.returncode == 2, result.stderr
        assert sys.version_info[:2] == (3, 11) and "glibc" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "--skip-glibc-check" in result.stderr
        assert not (tmp_path / "image").exists()
        result = run(tmp_path, *args, "--skip-glibc-check")
    output = built(result)
    context = tmp_path / "image"
    assert output["format"] == "image" and Path(str(output["path"])) == context
    task = context / "task"
    files = [p for p in task.rglob("*") if p.is_file()]
    assert output["files"] == len(files) and output["unzipped_bytes"] == sum(p.stat().st_size for p in files)
    (ffmpeg,) = (task / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*")
    assert os.access(ffmpeg, os.X_OK) and stat.S_IMODE(ffmpeg.stat().st_mode) == 0o755
    assert stat.S_IMODE((task / "videoconverter" / "cli" / "main.py").stat().st_mode) == 0o644
    assert (task / "av").is_dir() and (task / "videoconverter" / "serverless" / "handlers.py").is_file()
    assert (task / "videoconverter.toml").read_text(encoding="utf-8") == CONFIG
    assert not (task / "boto3").exists() and not (task / "botocore").exists()
    dockerfile = (context / "Dockerfile").read_text(encoding="utf-8").splitlines()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM public.ecr.aws/lambda/python:{version}" in dockerfile
    assert "COPY task/ ${LAMBDA_TASK_ROOT}/" in dockerfile
    assert any("VIDEOCONVERTER_CONFIG=${LAMBDA_TASK_ROOT}/videoconverter.toml" in line for line in dockerfile)
    assert dockerfile[-1] == 'CMD ["videoconverter.serverless.handlers.transcode_handler"]'


def test_transcode_as_a_zip_is_refused_in_one_line_naming_the_limit(tmp_path: Path) -> None:
    result = run(tmp_path, "--function", "transcode", "--format", "zip", "--output", str(tmp_path / "t.zip"))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("videoconverter: error: ") and "250 MB" in line and "--format image" in line, line
    assert result.stdout == "" and not (tmp_path / "t.zip").exists()


def test_a_plain_run_prints_one_summary_line(tmp_path: Path, config: Path) -> None:
    result = run(tmp_path, "--function", "publish", "--config", str(config))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert "dist/lambda-publish.zip" in line and "python3." in line


@pytest.mark.parametrize(
    ("implementation", "platform", "machine", "version"),
    [
        ("cpython", "darwin", "arm64", (3, 12)),
        ("cpython", "linux", "aarch64", (3, 12)),
        ("pypy", "linux", "x86_64", (3, 11)),
        ("cpython", "linux", "x86_64", (3, 10)),
        ("cpython", "linux", "x86_64", (3, 14)),
    ],
)
def test_only_lambdas_interpreters_can_package(
    implementation: str, platform: str, machine: str, version: tuple[int, int]
) -> None:
    with pytest.raises(ConfigError, match="package-lambda needs"):
        lambda_target(implementation, platform, machine, version)
    assert lambda_target("cpython", "linux", "x86_64", (3, 13)).runtime == "python3.13"
