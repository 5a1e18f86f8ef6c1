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
    # A pool (what `up` runs) of 4: as many processes as 2 dedicated workers for each of the 2 renditions, so
    # that each lives as long between kills (2 s on average) and a job is rarely killed max_receive_count times.
    result = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            "--uploads",
            "12",
            "--kill-every",
            "0.5",
            "--pool",
            "4",
            "--timeout",
            "200",
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
