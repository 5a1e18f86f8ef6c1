"""Workers' state folders (videoconverter.recovery): process identity, the lease journal, and reaping."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import wait_until
from videoconverter.brokers.base import Capabilities, Delivery
from videoconverter.errors import StaleReceiptError
from videoconverter.recovery.identity import ProcessIdentity, identity_of, is_alive, this_process
from videoconverter.recovery.journal import LEASE_MARGIN_SECONDS, LeaseJournal, broker_fingerprint, read_leases
from videoconverter.recovery.reaper import Reaped, Reaper
from videoconverter.recovery.workspace import UnsafeFolderError, Workspace

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
BROKER = broker_fingerprint("sqlite:///tmp/broker.sqlite3")
OTHER_BROKER = broker_fingerprint("sqlite:///elsewhere/broker.sqlite3")
ME = ProcessIdentity(4_000_000, 1, "feedf00d", 9)  # the reaper's identity in these tests: alive by the fake


def delivery(n: int, queue: str = "q") -> Delivery:
    return Delivery(queue, f"m{n}", "a body", f"receipt-{n}", n, 1000.0 + n)


@dataclass
class FakeBroker:
    """Records what is handed back; ``stale`` receipts are refused as a broker refuses settled ones."""

    capabilities: Capabilities = field(default_factory=lambda: Capabilities(leases_outlive_holder=True))
    released: list[tuple[str, str, float]] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        if delivery.receipt in self.stale:
            raise StaleReceiptError()
        self.released.append((delivery.queue, delivery.receipt, delay_seconds))


def dead_folder(root: Path, pid: int, leases: list[Delivery], broker: str = BROKER, timeout: float = 60) -> Path:
    """The state folder a worker killed while holding ``leases`` leaves, with a job dir holding a source copy."""
    workspace = Workspace(root, ProcessIdentity(pid, 7, "feedf00d", 9))
    journal = workspace.journal(broker)
    for d in leases:
        journal.hold(d, timeout)
    job = workspace.folder / "job-abc"
    job.mkdir(mode=0o700)
    (job / "source").write_bytes(b"x" * 100)
    return workspace.folder


def reaper(
    root: Path, broker: FakeBroker | None, alive: frozenset[int] = frozenset(), clock: float | None = None
) -> Reaper:
    """A reaper for which the processes in ``alive`` (and ME) run, whose clock reads ``clock`` if given."""
    return Reaper(
        root,
        broker,  # type: ignore[arg-type]
        BROKER,
        is_alive=lambda identity: identity.pid in alive or identity == ME,
        clock=(lambda: clock) if clock is not None else time.time,
        me=ME,
    )


# --- identity ---------------------------------------------------------------------------------------------


@linux_only
def test_this_process_is_alive_under_its_identity_and_a_reused_pid_is_not() -> None:
    me = this_process()
    assert ProcessIdentity.parse(me.name) == me and me.start_ticks > 0 and me.boot != "0" and me.namespace > 0
    assert is_alive(me)
    assert not is_alive(ProcessIdentity(me.pid, me.start_ticks + 1, me.boot, me.namespace))  # a reused pid
    assert not is_alive(ProcessIdentity(me.pid, me.start_ticks, "0ddba11", me.namespace))  # an earlier boot
    assert is_alive(ProcessIdentity(4_000_000, 1, me.boot, me.namespace + 1))  # another namespace's: cannot tell


@linux_only
def test_a_process_that_exited_is_dead_even_before_its_parent_reads_its_status() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = identity_of(child.pid)
    assert identity is not None and identity.start_ticks > 0
    # Not waited for: a zombie, which runs no more code and must count as dead.
    wait_until(lambda: identity_of(child.pid) is None, 10, message="the child to exit")
    assert not is_alive(identity)
    child.wait()


def test_the_start_time_is_read_after_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "123").mkdir()
    fields = ["S"] + ["0"] * 18 + ["4242"] + ["0"] * 10
    (tmp_path / "123" / "stat").write_text("123 (evil) (name) " + " ".join(fields))
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "ns" / "pid").write_text("")
    namespace = (tmp_path / "self" / "ns" / "pid").stat().st_ino
    assert identity_of(123, proc=tmp_path, boot="abc") == ProcessIdentity(123, 4242, "abc", namespace)
    (tmp_path / "123" / "stat").write_text("123 (w) Z " + " ".join(fields[1:]))
    assert identity_of(123, proc=tmp_path, boot="abc") is None  # a zombie
    assert identity_of(124, proc=tmp_path, boot="abc") is None  # no such process


@pytest.mark.parametrize(
    "name", ["", "123", "1-2-abc", "1-2-XYZ-3", "a-1-abc-3", "1-2-abc-3-", "../1-2-abc-3", "job-1-2-ab-3"]
)
def test_only_identity_names_parse(name: str) -> None:
    assert ProcessIdentity.parse(name) is None


# --- the journal ------------------------------------------------------------------------------------------


def test_the_journal_names_every_lease_held_and_no_file_is_left_when_none_is(tmp_path: Path) -> None:
    journal = LeaseJournal(tmp_path, BROKER)
    before = time.time()
    journal.hold(delivery(1), 60)
    journal.hold(delivery(2, "other"), 60)
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    leases = read_leases(tmp_path)
    assert [(lease.queue, lease.message_id, lease.receipt, lease.attempt) for lease in leases] == [
        ("q", "m1", "receipt-1", 1),
        ("other", "m2", "receipt-2", 2),
    ]
    assert leases[0].delivery() == Delivery("q", "m1", "", "receipt-1", 1, 1001.0)  # all release needs
    assert before + 60 - LEASE_MARGIN_SECONDS <= leases[0].expires_at <= time.time() + 60
    assert "a body" not in journal.path.read_text()  # bodies are not kept
    journal.drop(delivery(1))
    assert [lease.message_id for lease in read_leases(tmp_path)] == ["m2"]
    journal.drop(delivery(2))
    journal.drop(delivery(3))  # not held: nothing
    assert list(tmp_path.iterdir()) == []


def test_a_journal_that_cannot_be_written_never_fails_the_job(tmp_path: Path) -> None:
    journal = LeaseJournal(tmp_path / "gone" / "1-2-abc-3", BROKER)  # even its root was removed meanwhile
    with journal.holding(delivery(1), 30):
        pass
    assert not (tmp_path / "gone").exists()
    made = LeaseJournal(tmp_path / "1-2-abc-3", BROKER)  # a process's folder is made on its first lease
    made.hold(delivery(1), 30)
    assert stat.S_IMODE((tmp_path / "1-2-abc-3").stat().st_mode) == 0o700 and len(read_leases(made.path.parent)) == 1


def test_holding_drops_the_lease_however_the_block_ends(tmp_path: Path) -> None:
    journal = LeaseJournal(tmp_path, BROKER)
    with pytest.raises(RuntimeError), journal.holding(delivery(1), 30):
        assert [lease.receipt for lease in read_leases(tmp_path)] == ["receipt-1"]
        raise RuntimeError("the job blew up")
    assert read_leases(tmp_path) == []


def test_several_journals_share_a_folder_and_a_corrupt_one_is_skipped(tmp_path: Path) -> None:
    first, second = LeaseJournal(tmp_path, BROKER), LeaseJournal(tmp_path, BROKER)
    first.hold(delivery(1), 30)
    second.hold(delivery(2), 30)
    (tmp_path / "leases-broken.json").write_text("{not json")
    (tmp_path / "leases-wrong.json").write_text(json.dumps([{"queue": "q"}]))
    assert sorted(lease.receipt for lease in read_leases(tmp_path)) == ["receipt-1", "receipt-2"]


# --- the workspace ----------------------------------------------------------------------------------------


def test_job_dirs_are_private_inside_the_process_folder_and_removed_after(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "root", ProcessIdentity(1, 2, "abc", 3))
    with workspace.job_dir() as job:
        assert job.parent == tmp_path / "root" / "1-2-abc-3"
        for folder in (job, job.parent, job.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        (job / "source").write_bytes(b"x")
    assert not job.exists()
    workspace.remove_if_empty()
    assert not workspace.folder.exists()


def test_a_root_others_may_enter_or_a_symlink_is_refused(tmp_path: Path) -> None:
    open_root = tmp_path / "open"
    open_root.mkdir(mode=0o755)
    open_root.chmod(0o755)
    with pytest.raises(UnsafeFolderError):
        Workspace(open_root).journal(BROKER)
    (tmp_path / "target").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(UnsafeFolderError), Workspace(tmp_path / "link").job_dir():
        pass


# --- reaping ----------------------------------------------------------------------------------------------


def test_a_dead_workers_folder_is_removed_and_its_leases_handed_back(tmp_path: Path) -> None:
    dead = dead_folder(tmp_path, 100, [delivery(1), delivery(2)])
    alive = dead_folder(tmp_path, 200, [delivery(3)])
    broker = FakeBroker()
    reaped = reaper(tmp_path, broker, alive=frozenset({200})).reap_dead()
    assert (reaped.folders, reaped.released) == (1, 2)
    assert sorted(broker.released) == [("q", "receipt-1", 0.0), ("q", "receipt-2", 0.0)]
    assert not dead.exists()
    assert (alive / "job-abc" / "source").exists() and len(read_leases(alive)) == 1  # a live worker's: untouched


def test_folders_that_are_not_a_workers_or_not_this_users_are_left_alone(tmp_path: Path) -> None:
    for name in ("notes", "1-2-abc", "job-1-2-abc-9"):
        (tmp_path / name).mkdir()
    (tmp_path / "300-7-feedf00d-9").write_text("a file, not a folder")
    (tmp_path / "target").mkdir()
    (tmp_path / "301-7-feedf00d-9").symlink_to(tmp_path / "target")
    assert reaper(tmp_path, FakeBroker()).reap_dead().folders == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes", "1-2-abc", "job-1-2-abc-9", "300-7-feedf00d-9", "target", "301-7-feedf00d-9"]
    )


def test_a_folder_found_later_hands_back_only_leases_that_cannot_have_moved_on(tmp_path: Path) -> None:
    dead_folder(tmp_path, 100, [delivery(1)], timeout=10)
    dead_folder(tmp_path, 101, [delivery(2)], timeout=3600)
    broker = FakeBroker()
    reaped = reaper(tmp_path, broker, clock=time.time() + 60).reap_dead()
    # receipt-1's lease ended 50 s ago: the message may be another worker's now, and SQS would accept the receipt.
    assert (reaped.folders, [r for _, r, _ in broker.released]) == (2, ["receipt-2"])


def test_the_supervisor_hands_back_every_lease_of_a_child_it_saw_die(tmp_path: Path) -> None:
    dead_folder(tmp_path, 100, [delivery(1)], timeout=10)
    broker = FakeBroker()
    # Past the journal's estimate, but the child's heartbeats kept the lease until it died a moment ago.
    reaped = reaper(tmp_path, broker, clock=time.time() + 60).reap(ProcessIdentity(100, 7, "feedf00d", 9))
    assert (reaped.folders, [r for _, r, _ in broker.released]) == (1, ["receipt-1"])
    assert reaper(tmp_path, broker).reap(ProcessIdentity(100, 7, "feedf00d", 9)) == Reaped()  # gone: nothing


def test_a_refused_receipt_or_a_broker_that_requeues_by_itself_still_removes_the_folder(tmp_path: Path) -> None:
    dead_folder(tmp_path, 100, [delivery(1), delivery(2)])
    broker = FakeBroker(stale={"receipt-1"})  # another worker has it already
    assert reaper(tmp_path, broker).reap_dead().released == 1
    dead_folder(tmp_path, 101, [delivery(3)])
    amqp = FakeBroker(capabilities=Capabilities(leases_outlive_holder=False))
    reaped = reaper(tmp_path, amqp).reap_dead()
    assert (reaped.folders, amqp.released) == (1, [])
    assert list(tmp_path.iterdir()) == []


def test_another_brokers_live_leases_keep_their_journal_but_not_the_temp_files(tmp_path: Path) -> None:
    folder = dead_folder(tmp_path, 100, [delivery(1)], broker=OTHER_BROKER)
    broker = FakeBroker()
    assert reaper(tmp_path, broker).reap_dead().folders == 0
    assert broker.released == [] and not (folder / "job-abc").exists() and len(read_leases(folder)) == 1
    assert reaper(tmp_path, broker, clock=time.time() + 3600).reap_dead().folders == 1  # once the lease has ended
    assert broker.released == [] and not folder.exists()


def test_a_folder_claimed_by_a_reaper_that_died_is_reaped_again_but_not_one_a_live_reaper_holds(
    tmp_path: Path,
) -> None:
    dead_folder(tmp_path, 100, [delivery(1)]).rename(tmp_path / "reaping-555-1-feedf00d-9-0a0b")
    dead_folder(tmp_path, 101, [delivery(2)]).rename(tmp_path / "reaping-556-1-feedf00d-9-0c0d")
    broker = FakeBroker()
    reaped = reaper(tmp_path, broker, alive=frozenset({556})).reap_dead()
    assert (reaped.folders, [r for _, r, _ in broker.released]) == (1, ["receipt-1"])
    assert [p.name for p in tmp_path.iterdir()] == ["reaping-556-1-feedf00d-9-0c0d"]


def test_the_real_liveness_check_never_reaps_this_process(tmp_path: Path) -> None:
    me = this_process()
    workspace = Workspace(tmp_path, me)
    workspace.journal(BROKER).hold(delivery(1), 60)
    broker = FakeBroker()
    assert Reaper(tmp_path, broker, BROKER).reap_dead().folders == 0  # type: ignore[arg-type]
    assert broker.released == [] and workspace.folder.exists()
