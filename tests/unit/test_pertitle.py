"""Quality per title, the pure part: sample placement, the next CRF to try, CRF interpolation, rung dropping."""

from __future__ import annotations

import json

import pytest

from videoconverter.transcode import pertitle
from videoconverter.transcode.pertitle import (
    Probe,
    QualityChoice,
    QualitySearch,
    SampleWindow,
    choose_crf,
    decode_groups,
    drop_rungs,
    first_crf,
    lowest_useful_crf,
    next_crf,
    predicted_kbps,
    rungs_to_keep,
    sample_plan,
    sample_windows,
    vmaf_subsample,
)

CAP = 2400.0


# --- where to sample ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "count", "seconds"),
    [
        (0.5, 1, 0.5),  # shorter than the least sampled: the whole source
        (5.0, 2, 0.5),  # 12 % is less than the minimum: 1 s in two
        (60.0, 4, 1.8),  # 7.2 s in samples of about 2 s
        (3600.0, 8, 2.5),  # at most 20 s in all, at most 8 samples
    ],
)
def test_the_sample_plan_is_a_share_of_the_duration_within_bounds(duration: float, count: int, seconds: float) -> None:
    planned_count, planned_seconds = sample_plan(duration)
    assert (planned_count, round(planned_seconds, 3)) == (count, seconds)


def test_samples_are_spread_evenly_without_keyframes() -> None:
    windows = sample_windows(60.0, plan=(4, 2.0))
    assert [w.start_seconds for w in windows] == [6.5, 21.5, 36.5, 51.5]  # centred in each quarter
    assert all(w.seconds == 2.0 for w in windows)


def test_a_sample_starts_at_a_near_keyframe() -> None:
    # The keyframe at or before each planned start: 5.0 is within a window's length of 6.5 (it starts there);
    # 16.0 is not (kept at 21.5: 5.5 s of decoding is within reach).
    windows = sample_windows(60.0, keyframes=[5.0, 16.0, 36.5, None], plan=(4, 2.0))
    assert [w.start_seconds for w in windows] == [5.0, 21.5, 36.5, 51.5]


def test_samples_never_overlap() -> None:
    windows = sample_windows(4.0, keyframes=[0.0, 0.0], plan=(2, 1.5))
    assert windows[0].end_seconds <= windows[1].start_seconds


def test_windows_a_seek_would_decode_twice_are_read_in_one_pass() -> None:
    windows = [SampleWindow(1.0, 0.5), SampleWindow(3.0, 0.5), SampleWindow(9.0, 0.5)]
    # Keyframes at 0 and 8: the second window's is before the first one's end; the third's is not.
    assert decode_groups(windows, [0.0, 0.0, 8.0]) == ((windows[0], windows[1]), (windows[2],))
    assert decode_groups(windows) == ((windows[0],), (windows[1],), (windows[2],))  # unknown: one seek each


def test_a_tiny_source_is_sampled_whole() -> None:
    assert sample_windows(0.9) == (SampleWindow(0.0, 0.9),)


@pytest.mark.parametrize(("frames", "every"), [(18, 1), (119, 1), (120, 2), (600, 4)])
def test_long_samples_are_scored_on_every_nth_frame(frames: int, every: int) -> None:
    assert vmaf_subsample(frames) == every


# --- which CRF to try ----------------------------------------------------------------------------------------


def test_the_first_crf_moves_from_the_default_by_the_prior_slope() -> None:
    assert first_crf(23, "h264", pertitle.TYPICAL_DEFAULT_VMAF) == 23
    assert first_crf(23, "h264", 97.75) == 20  # 2.25 points above: 3 steps lower
    assert first_crf(23, "h264", 50.0) == pertitle.CRF_RANGE["h264"][1]  # clamped to the search's range


def test_a_first_probe_close_to_the_target_is_enough() -> None:
    assert next_crf([Probe(23, 95.8, 1500)], 95.0, CAP, "h264") is None


def test_the_second_probe_steps_towards_the_target() -> None:
    assert next_crf([Probe(23, 99.0, 900)], 95.0, CAP, "h264") == 28  # 4 points above: 5.3 steps up
    assert next_crf([Probe(23, 93.0, 900)], 95.0, CAP, "h264") == 20  # 2 points below: 2.7 steps down
    assert next_crf([Probe(23, 50.0, 900)], 95.0, CAP, "h264") == 23 - pertitle.MAX_STEP


def test_below_the_target_at_the_cap_nothing_lower_is_tried() -> None:
    assert next_crf([Probe(23, 90.0, 0.99 * CAP)], 95.0, CAP, "h264") is None
    # 80 % of the cap: one step lower reaches it, and the target lies far beyond: chosen without a probe.
    near = [Probe(20, 83.0, 0.8 * CAP)]
    assert next_crf(near, 97.5, CAP, "h264") is None
    assert choose_crf(near, 97.5, CAP, "h264")[0] == 19


def test_a_third_probe_only_when_the_choice_lies_beyond_the_two() -> None:
    bracketed = [Probe(21, 96.0, 2000), Probe(25, 93.0, 1200)]
    assert next_crf(bracketed, 95.0, CAP, "h264") is None
    beyond = [Probe(23, 99.0, 900), Probe(25, 98.0, 800)]  # half a point a step: the target is 6 steps further
    assert next_crf(beyond, 95.0, CAP, "h264") == 31
    assert next_crf([*beyond, Probe(31, 95.5, 600)], 95.0, CAP, "h264") is None  # three at most


# --- which CRF meets the target ------------------------------------------------------------------------------


def test_the_crf_is_interpolated_between_probes_and_rounded_towards_quality() -> None:
    probes = [Probe(21, 96.0, 2000), Probe(25, 92.0, 1000)]  # one point a step
    crf, vmaf, kbps = choose_crf(probes, 94.5, CAP, "h264")
    assert (crf, vmaf) == (22, 95.0)  # 22.5 exactly: 22 still meets the target, 23 would not
    assert kbps == pytest.approx(2000 * (1000 / 2000) ** 0.25)  # a quarter of the way, on a log scale


def test_one_probe_uses_the_prior_slope() -> None:
    crf, vmaf, _ = choose_crf([Probe(23, 96.0, 1500)], 95.0, CAP, "h264")
    assert crf == 24  # 1 point at 0.75 a step: 1.33 steps up, whole steps only
    assert vmaf == pytest.approx(96.0 - pertitle.PRIOR_SLOPE)


def test_the_choice_extrapolates_only_a_little_beyond_the_probes() -> None:
    probes = [Probe(23, 97.0, 1200), Probe(25, 96.0, 1000)]  # 0.5 a step
    assert choose_crf(probes, 95.0, CAP, "h264")[0] == 27
    flat = [Probe(23, 98.1, 300), Probe(27, 98.0, 280)]  # a flat curve may end in a cliff
    assert choose_crf(flat, 90.0, CAP, "h264")[0] == 27 + pertitle.MAX_EXTRAPOLATION
    assert choose_crf(flat, 90.0, CAP, "h264", reach=pertitle.MAX_STEP)[0] == 27 + pertitle.MAX_STEP


def test_the_choice_never_goes_below_a_crf_the_cap_already_held() -> None:
    probes = [Probe(21, 90.5, 0.99 * CAP), Probe(25, 89.0, 0.96 * CAP)]
    crf, vmaf, kbps = choose_crf(probes, 95.0, CAP, "h264")
    assert (crf, vmaf) == (25, 89.0)  # lower CRFs cost the same bytes and gain nothing
    assert kbps <= CAP


def test_a_bitrate_that_stops_growing_near_the_cap_was_held_by_it() -> None:
    probes = [Probe(17, 91.0, 1700.0), Probe(20, 90.0, 1650.0), Probe(26, 85.0, 800.0)]  # 17 -> 20: 1 % a step
    assert lowest_useful_crf(probes, CAP, "h264") == 17
    assert choose_crf(probes, 95.0, CAP, "h264")[0] == 17
    far = [Probe(17, 91.0, 700.0), Probe(20, 90.0, 690.0)]  # flat, but far under the cap: not the cap's doing
    assert lowest_useful_crf(far, CAP, "h264") < 17


def test_predicted_bitrate_is_log_linear_and_never_above_the_cap() -> None:
    probes = [Probe(20, 90.0, 2000.0), Probe(26, 85.0, 500.0)]
    assert predicted_kbps(probes, 23, CAP) == pytest.approx(1000.0)
    assert predicted_kbps(probes, 14, CAP) == CAP


# --- which rungs -------------------------------------------------------------------------------------------


def test_the_top_and_the_bottom_rung_always_stay() -> None:
    assert rungs_to_keep([(95.0, 500.0), (95.0, 510.0)]) == [True, True]
    assert rungs_to_keep([(95.0, 500.0)]) == [True]


def test_a_rung_as_good_as_the_one_above_at_a_similar_bitrate_is_dropped() -> None:
    ladder = [(96.0, 300.0), (96.0, 600.0), (95.5, 700.0), (95.0, 1500.0)]
    assert rungs_to_keep(ladder) == [True, False, True, True]  # 600 -> 700 kb/s: a step no player needs


def test_a_rung_stays_when_the_rung_above_is_much_worse_or_much_dearer() -> None:
    worse = [(96.0, 300.0), (96.0, 600.0), (93.0, 700.0)]  # 3 points worse above
    dearer = [(96.0, 300.0), (96.0, 600.0), (96.0, 900.0)]  # 1.5x the bitrate above
    assert rungs_to_keep(worse) == [True, True, True]
    assert rungs_to_keep(dearer) == [True, True, True]


def test_a_rung_is_compared_with_the_next_rung_kept_above_it() -> None:
    # 720 goes (1080 is as good at 1.2x); 480 is then compared with 1080 (2x): it stays.
    ladder = [(96.0, 200.0), (96.0, 1000.0), (96.0, 1700.0), (96.0, 2000.0)]
    assert rungs_to_keep(ladder) == [True, True, False, True]


def test_drop_rungs_marks_the_choices() -> None:
    choices = tuple(QualityChoice(f"{side}p", 96.0, 23, 96.0, kbps, ()) for side, kbps in
                    [(360, 300.0), (480, 600.0), (720, 700.0), (1080, 1500.0)])  # fmt: skip
    search = drop_rungs(QualitySearch((SampleWindow(0.0, 1.0),), choices))
    assert [c.kept for c in search.choices] == [True, False, True, True]
    assert search.note().endswith("rungs dropped (the rung above is as good at a similar bitrate): 480p")


# --- what the job records --------------------------------------------------------------------------------------


def test_the_search_as_the_jobs_json_and_note() -> None:
    choice = QualityChoice("720p", 95.0, 24, 95.31, 1234.56, (Probe(22, 96.4, 1700.0), Probe(24, 95.3, 1235.0)))
    search = QualitySearch((SampleWindow(1.1, 0.3), SampleWindow(3.6, 0.3)), (choice,), 1.234)
    search = search.with_measured({"720p": 95.04})
    data = json.loads(json.dumps(search.as_dict()))
    assert data == {
        "samples": [{"start_seconds": 1.1, "seconds": 0.3}, {"start_seconds": 3.6, "seconds": 0.3}],
        "search_seconds": 1.23,
        "outputs": [
            {
                "name": "720p",
                "target_vmaf": 95.0,
                "crf": 24,
                "predicted_vmaf": 95.31,
                "predicted_video_kbps": 1234.6,
                "measured_vmaf": 95.04,
                "capped": False,
                "kept": True,
                "probes": [
                    {"crf": 22, "vmaf": 96.4, "video_kbps": 1700.0},
                    {"crf": 24, "vmaf": 95.3, "video_kbps": 1235.0},
                ],
            }
        ],
    }
    assert search.note() == "720p: CRF 24 for VMAF 95 (predicted 95.3, measured 95.0)"
    assert "CRF 22 → 96.4 (1700 kb/s)" in search.log_line()
