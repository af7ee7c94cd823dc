"""Instance tracks with persistent IDs: matching through crossings and occlusions, release, the object cap, the
hint that labels a frame's mask downstream, and the synthetic multi-instrument clips."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from surgseg.engines.sam2.config import InstancesConfig
from surgseg.engines.sam2.instances import InstanceTracker
from surgseg.engines.video.synthetic_instances import InstanceClip, instance_clips, random_instance_clip

SIZE = (64, 80)
MIN_AREA, FRAMES, RELEASE = 16, 3, 8


def bars(vertical_x: float | None, horizontal_y: float | None = 30) -> np.ndarray:
    """A class-1 mask: a vertical bar at x (None: absent) and a horizontal bar at y (None: absent)."""
    mask = np.zeros(SIZE, np.uint8)
    if vertical_x is not None:
        x = int(round(vertical_x))
        mask[5:60, max(x - 3, 0) : max(x + 3, 0)] = 1
    if horizontal_y is not None:
        mask[horizontal_y - 3 : horizontal_y + 3, 30:56] = 1
    return mask


def tracker(**config) -> InstanceTracker:
    return InstanceTracker(InstancesConfig(enabled=True, **config), 2, SIZE, MIN_AREA, FRAMES, RELEASE)


def run(track: InstanceTracker, masks: list[np.ndarray]) -> list:
    updates = []
    for mask in masks:
        track.hint()
        updates.append(track.update(mask))
    return updates


def ids_at(update, points: list[tuple[int, int]]) -> list[int]:
    """Track ids at (x, y) pixels."""
    return [int(update.ids[y, x]) for x, y in points]


def events(updates, kind: str) -> list[tuple[int, int]]:
    return [(t, e["id"]) for t, u in enumerate(updates) for e in u.events if e["event"] == kind]


def test_ids_are_kept_through_a_crossing() -> None:
    # the vertical bar slides right across the horizontal one (they form one component while they touch)
    masks = [bars(15 + 2 * t) for t in range(30)]
    updates = run(tracker(), masks)
    before = ids_at(updates[5], [(25, 50), (45, 30)])
    after = ids_at(updates[-1], [(73, 50), (45, 30)])
    assert before[0] != before[1] and 0 not in before
    assert after == before
    assert {i for _, i in events(updates, "merged")} == set(before)
    assert {i for _, i in events(updates, "split")} == set(before)


def test_a_track_is_born_after_seeding_frames() -> None:
    updates = run(tracker(), [bars(None)] * 4)
    assert [u.born for u in updates] == [[], [], [1], []]
    assert updates[1].ids.max() == 0 and set(np.unique(updates[2].ids)) == {0, 1}


def test_occlusion_gap_then_refound_with_the_same_id() -> None:
    masks = [bars(20, None)] * 5 + [np.zeros(SIZE, np.uint8)] * 5 + [bars(22, None)] * 3
    updates = run(tracker(lost_after=3), masks)
    assert events(updates, "born") == [(2, 1)]
    assert events(updates, "lost") == [(7, 1)]
    assert events(updates, "refound") == [(10, 1)]
    assert int(updates[-1].ids[30, 22]) == 1 and events(updates, "released") == []


def test_a_short_gap_is_silent() -> None:
    masks = [bars(20, None)] * 5 + [np.zeros(SIZE, np.uint8)] * 2 + [bars(20, None)] * 2
    updates = run(tracker(lost_after=3), masks)
    assert [e["event"] for u in updates for e in u.events] == ["born"]
    assert int(updates[-1].ids[30, 20]) == 1


def test_a_track_is_released_after_release_after_frames() -> None:
    masks = [bars(20, None)] * 4 + [np.zeros(SIZE, np.uint8)] * (RELEASE + 1) + [bars(20, None)] * 4
    updates = run(tracker(), masks)
    assert events(updates, "released") == [(3 + RELEASE, 1)]
    assert events(updates, "born") == [(2, 1), (4 + RELEASE + 3, 2)]


def test_a_missing_track_is_not_refound_far_from_where_it_left() -> None:
    masks = [bars(10, None)] * 4 + [np.zeros(SIZE, np.uint8)] * 4 + [bars(70, None)] * 4
    updates = run(tracker(refind_distance=0.15), masks)
    assert events(updates, "refound") == [] and events(updates, "born") == [(2, 1), (10, 2)]


def test_max_objects_cap_logs_once(caplog) -> None:
    mask = np.zeros(SIZE, np.uint8)
    for x in (5, 30, 55):
        mask[10:40, x : x + 8] = 1
    with caplog.at_level(logging.INFO, logger="surgseg.engines.sam2.instances"):
        updates = run(tracker(max_objects=2), [mask] * 10)
    assert len(updates[-1].masks) == 2 and set(np.unique(updates[-1].ids)) == {0, 1, 2}
    assert sum("max_objects" in r.getMessage() for r in caplog.records) == 1


def test_the_hint_labels_a_mask_as_the_tracker_will() -> None:
    track = tracker()
    masks = [bars(15 + 2 * t) for t in range(14)]
    for mask in masks[:-1]:
        track.hint()
        track.update(mask)
    labelled = track.hint().label(masks[-1])
    assert np.array_equal(labelled, track.update(masks[-1]).ids)
    assert set(np.unique(labelled)) == {0, 1, 2}


def test_synthetic_clips_have_exact_instance_truth_and_tags() -> None:
    clips = instance_clips(frames=64, size=(160, 128))
    crossing = InstanceClip(clips["crossing"])
    frame = crossing.render(30)
    assert frame.frame.shape == (128, 160, 3) and frame.ids.dtype == np.uint16
    assert np.array_equal(frame.mask, (frame.ids > 0).astype(np.uint8))
    assert set(np.unique(frame.ids)) == {0, 1, 2} and "crossing" in frame.tags
    reentry = InstanceClip(clips["occlusion_reentry"])
    back = [t for t in range(64) if reentry.in_view[1, t] and t and not reentry.in_view[1, t - 1]]
    assert len(back) == 1 and reentry.in_view[1, : back[0]].any() and not reentry.in_view[1, back[0] - 1]
    assert "re-entry" in reentry.render(back[0]).tags and "re-entry" not in reentry.render(back[0] + 1).tags


def test_random_multi_instrument_clips_differ_by_seed_and_show_their_instruments() -> None:
    configs = [random_instance_clip(seed, frames=16, size=(160, 128)) for seed in range(8)]
    assert all(2 <= len(c.instruments) <= 3 for c in configs)
    assert len({c.instruments for c in configs}) == 8 and random_instance_clip(3, 16, (160, 128)) == configs[3]
    clips = [InstanceClip(c) for c in configs]
    assert all(clip.in_view.any(axis=1).all() for clip in clips)  # every instrument comes into view
    assert sum("crossing" in clip.render(t).tags for clip in clips for t in range(16)) > 0


@pytest.mark.parametrize("name", ["crossing", "three_tools"])
def test_tracker_keeps_ids_on_the_ground_truth_of_a_clip(name) -> None:
    clip = InstanceClip(instance_clips(frames=64, size=(160, 128))[name])
    track = InstanceTracker(InstancesConfig(enabled=True), 2, (128, 160), 64, FRAMES, RELEASE)
    owner: dict[int, set[int]] = {}
    for t in range(0, 64, 2):
        truth = clip.render(t)
        track.hint()
        update = track.update(truth.mask)
        for gt_id in np.unique(truth.ids[truth.ids > 0]).tolist():
            values, counts = np.unique(update.ids[truth.ids == gt_id], return_counts=True)
            if values[np.argmax(counts)]:
                owner.setdefault(gt_id, set()).add(int(values[np.argmax(counts)]))
    assert all(len(ids) == 1 for ids in owner.values()), owner
    assert len(owner) == len(clip.config.instruments)

