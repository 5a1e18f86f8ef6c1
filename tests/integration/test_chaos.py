"""The chaos soak (bench/chaos.py) in a short form: uploads while workers are killed at random."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.contract.conftest import RABBITMQ_URL, reachable

pytestmark = [pytest.mark.ffmpeg, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]
CHAOS = Path(__file__).parents[2] / "bench" / "chaos.py"


@pytest.mark.parametrize("broker", ["sqlite", "rabbitmq", "sqlite-split"])
def test_killing_workers_at_random_loses_and_duplicates_nothing(broker: str) -> None:
    extra = ["--split"] if broker.endswith("-split") else []  # every job split into pieces, then joined
    if broker == "rabbitmq":
        require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
        extra += ["--broker-url", RABBITMQ_URL]
    # A pool (what `up` runs) of 4: as many processes as 2 dedicated workers for each of the 2 renditions. Each lives
    # 4 s between kills on average, so that a job that a loaded CI machine slows to a few seconds is still rarely
    # killed max_receive_count (25) times: at a kill every 0.5 s, CI once saw a job killed 10 times in a row.
    result = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            "--uploads",
            "12",
            "--kill-every",
            "1",
            "--pool",
            "4",
            "--timeout",
            "150",  # with its start (30 s at most) and its shutdown (60 s), under the 280 s below
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    figures = json.loads(result.stdout)
    assert figures["workers_killed"] >= 2, "the soak killed too few workers to prove anything"
    assert (figures["jobs_lost"], figures["duplicated_outputs"], figures["dead_lettered"]) == (0, 0, 0), figures
    assert result.returncode == 0
