"""`videoconverter up --workers auto` as a user runs it: out on a burst, back to the minimum when idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.test_cli import _alive, _children, _command_line, run
from tests.conftest import TINY_RENDITIONS_TOML, interrupt, wait_until
from videoconverter.config import load_config
from videoconverter.pipeline import open_services

pytestmark = [pytest.mark.ffmpeg, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

#: The tiny pipeline's first rendition only, so that a burst can take the whole CPU budget.
ONE_RENDITION = TINY_RENDITIONS_TOML.split('[[renditions]]\nname = "smaller"')[0]


def test_up_scales_out_on_a_burst_and_back_to_the_minimum_when_idle(tmp_path: Path, small_clip: Path) -> None:
    config_path = tmp_path / "videoconverter.toml"
    config_path.write_text(f'data_dir = "{tmp_path / "data"}"\n{ONE_RENDITION}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    env["VIDEOCONVERTER_CONFIG"] = str(config_path)
    peak = min(2, len(os.sched_getaffinity(0)))  # the CPU budget: threads x workers <= cores
    log_path = tmp_path / "up.log"
    with open(log_path, "w") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "videoconverter", "up", "--workers", "auto", "--min", "0", "--max", "2",
             "--scale-in-after", "1", "--no-web", "--no-reconcile"],
            env=env, stderr=log,
        )  # fmt: skip
    try:
        wait_until(lambda: "autoscaling: 0-2 workers" in log_path.read_text(), 30, message="`up` to start")
        wait_until(lambda: run(env, "ls", "s3://videoconverter-input", check=False).returncode == 0, 30)

        # The minimum is 0: no worker while nothing is queued, only the standby (warmed up, serving no queue).
        def standbys() -> list[int]:  # a child just forked shows `up`'s command line until it execs
            return [p for p in _children(up.pid) if "--standby" in _command_line(p)]

        (standby,) = wait_until(standbys, 30, message="the standby")
        assert _children(up.pid) == {standby}
        svc = open_services(load_config(environ={}, path=config_path))
        try:
            for i in range(6):
                svc.store.put_file("videoconverter-input", f"burst-{i}.mp4", small_clip)
        finally:
            svc.close()
        # The standby becomes the first new worker and a new standby starts behind it.
        wait_until(lambda: len(_children(up.pid)) == peak + 1, 30, message=f"{peak} workers for the burst")
        waited = run(env, "jobs", "--wait", "120", "--json")
        assert {j["state"] for j in json.loads(waited.stdout)["jobs"]} == {"done"}
        workers = _children(up.pid)
        wait_until(lambda: len(_children(up.pid)) == 1, 30, message="scaling back to no worker when idle")
        (waiting,) = _children(up.pid)  # the new standby
        assert waiting != standby and not any(_alive(p) for p in workers - {waiting})
        log = log_path.read_text()
        assert f"scaling small: 0 -> {peak} workers" in log and f"scaling small: {peak} -> 0 workers" in log
        assert f"the standby worker (pid {standby}) takes the place of a small worker" in log
        assert "restarting" not in log  # scaled-in workers stopped on request, they did not die
    finally:
        interrupt(up)
