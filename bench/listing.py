"""What a worker's look for an upload's caption files costs on the embedded file store, as the input bucket grows.

Every job lists the input bucket with its upload's stem as the prefix (``talk.`` finds ``talk.en.vtt``) before
its conversion and again after it. For each size, a fresh store gets N uploads (empty ``.mp4`` objects), half at
the bucket's top and half in 100 folders (``day-17/clip-123.mp4``), and the script times the median of
``--repeat`` lookups, for a top-level upload and a foldered one, against the same lookup done as it was before
the store read only the folders that can hold the prefix: a walk of the whole bucket, keeping the keys that start
with it.

    .venv/bin/python bench/listing.py                      # 1,000 / 10,000 uploads
    .venv/bin/python bench/listing.py --sizes 100,1000,10000,50000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from videoconverter.config import Config
from videoconverter.sidecars import list_sidecars
from videoconverter.storage.filesystem import FileSystemStore

FOLDERS = 100


def _seed(store: FileSystemStore, bucket: str, uploads: int, empty: Path) -> None:
    for n in range(uploads):
        key = f"clip-{n}.mp4" if n % 2 == 0 else f"day-{n % FOLDERS}/clip-{n}.mp4"
        store.put_file(bucket, key, empty)


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(uploads: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = FileSystemStore(root / "buckets")
        config = Config(data_dir=root)
        bucket = config.input_bucket
        store.create_bucket(bucket)
        empty = root / "empty"
        empty.write_bytes(b"")
        _seed(store, bucket, uploads, empty)
        middle = uploads // 2 // 2 * 2  # an even number: a top-level upload
        return {
            "top-level upload": _median_ms(lambda: list_sidecars(store, config, f"clip-{middle}.mp4"), repeat),
            "foldered upload": _median_ms(
                lambda: list_sidecars(store, config, f"day-{(middle + 1) % FOLDERS}/clip-{middle + 1}.mp4"), repeat
            ),
            "walk of the whole bucket": _median_ms(lambda: _walk_all(store, bucket, f"clip-{middle}."), repeat),
        }


def _walk_all(store: FileSystemStore, bucket: str, prefix: str) -> list[object]:
    """The lookup as it was: every key of the bucket read, those with the prefix kept and their objects read."""
    base = store.root / bucket
    keys = sorted(key for key in store._listed_keys(bucket, base) if key.startswith(prefix))
    return [store.head(bucket, key) for key in keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="uploads in the bucket, comma-separated")
    parser.add_argument("--repeat", type=int, default=30, help="lookups timed per figure (default 30)")
    args = parser.parse_args()
    print("| uploads | top-level upload (ms) | foldered upload (ms) | walk of the whole bucket (ms) | ratio |")
    print("|---|---|---|---|---|")
    for uploads in (int(size) for size in args.sizes.split(",")):
        got = measure(uploads, args.repeat)
        ratio = got["top-level upload"] / got["walk of the whole bucket"]
        print(
            f"| {uploads:,} | {got['top-level upload']:.2f} | {got['foldered upload']:.2f} | "
            f"{got['walk of the whole bucket']:.1f} | {ratio:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
