"""Synthetic clips: deterministic, scripted presence, masks aligned with the drawn instrument, tags."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig, synthetic_clip

QUIET = dict(smoke=(), occlusion=(), glare=(), fast_motion=())


def test_frames_masks_and_tags_have_the_contract_types():
    frame, mask, tags = next(synthetic_clip(SyntheticClipConfig(size=(96, 64), frames=3, seed=1)))
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert mask.shape == (64, 96) and mask.dtype == np.uint8
    assert isinstance(tags, list)


def test_same_seed_gives_identical_clips_and_other_seed_differs():
    def frames(seed: int) -> list[np.ndarray]:
        return [f for f, _, _ in synthetic_clip(SyntheticClipConfig(size=(64, 64), frames=12, seed=seed))]

    first, again, other = frames(5), frames(5), frames(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_random_access_render_equals_streaming():
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=10, seed=2))
    streamed = list(clip)
    frame, mask, tags = clip.render(7)
    assert np.array_equal(frame, streamed[7][0]) and np.array_equal(mask, streamed[7][1]) and tags == streamed[7][2]


def test_scripted_presence_enters_at_10_leaves_and_reenters():
    config = SyntheticClipConfig(size=(80, 64), frames=40, seed=3, presence=((10, 20), (30, 40)), **QUIET)
    visible = [bool(mask.any()) for _, mask, _ in synthetic_clip(config)]
    assert visible == [10 <= t < 20 or 30 <= t < 40 for t in range(40)]
    absent = ["absent" in tags for _, _, tags in synthetic_clip(config)]
    assert absent == [not v for v in visible]


@pytest.mark.parametrize("size", [(96, 64), (192, 48), (48, 120)])
def test_instrument_is_visible_in_every_present_frame_despite_motion_and_blur(size):
    for seed in range(4):
        clip = SyntheticClip(SyntheticClipConfig(size=size, frames=30, seed=seed, occlusion=()))
        visible = [bool(mask.any()) for _, mask, _ in clip]
        assert visible == [clip.active("presence", t) for t in range(30)]


def test_mask_is_exactly_where_the_instrument_changed_the_image():
    size, frames = (96, 80), 6
    with_tool = SyntheticClip(SyntheticClipConfig(size=size, frames=frames, seed=4, presence=((0, frames),), **QUIET))
    empty = SyntheticClip(SyntheticClipConfig(size=size, frames=frames, seed=4, presence=(), **QUIET))
    for t in range(frames):
        frame, mask, _ = with_tool.render(t)
        background, _, _ = empty.render(t)
        change = np.abs(frame.astype(np.int16) - background).max(axis=2)
        inside = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
        near = cv2.dilate(mask, np.ones((25, 25), np.uint8)) > 0
        assert inside.sum() > 50
        assert np.mean(change[inside] > 12) > 0.95
        assert change[~near].max() == 0


def test_shaft_and_tip_classes_merge_into_one_instrument_class():
    three = SyntheticClip(SyntheticClipConfig(size=(96, 80), frames=16, seed=7, presence=((0, 16),), num_classes=3))
    two = SyntheticClip(SyntheticClipConfig(size=(96, 80), frames=16, seed=7, presence=((0, 16),), num_classes=2))
    _, mask3, _ = three.render(8)
    _, mask2, _ = two.render(8)
    assert set(np.unique(mask3)) == {0, 1, 2}
    assert set(np.unique(mask2)) == {0, 1}
    np.testing.assert_array_equal(mask2, (mask3 > 0).astype(np.uint8))


def test_event_tags_follow_the_schedule():
    config = SyntheticClipConfig(size=(64, 64), frames=12, seed=8, presence=((0, 12),), smoke=((2, 5),),
                                 glare=((6, 8),), fast_motion=((9, 11),), occlusion=())
    tags = [t for _, _, t in synthetic_clip(config)]
    assert [i for i, t in enumerate(tags) if "smoke" in t] == [2, 3, 4]
    assert [i for i, t in enumerate(tags) if "glare" in t] == [6, 7]
    assert [i for i, t in enumerate(tags) if "fast_motion" in t] == [9, 10]


def test_occlusion_hides_part_of_the_instrument():
    base = dict(size=(96, 80), frames=8, seed=9, presence=((0, 8),), smoke=(), glare=(), fast_motion=())
    occluded = SyntheticClip(SyntheticClipConfig(occlusion=((0, 8),), **base))
    clear = SyntheticClip(SyntheticClipConfig(occlusion=(), **base))
    hidden = []
    for t in range(8):
        _, mask_o, tags = occluded.render(t)
        _, mask_c, _ = clear.render(t)
        assert np.all(mask_o <= mask_c)
        hidden.append(("occlusion" in tags, int((mask_c > 0).sum() - (mask_o > 0).sum())))
    assert any(tagged and count > 0 for tagged, count in hidden)


@pytest.mark.parametrize("bad", [dict(num_classes=4), dict(size=(16, 64)), dict(frames=0), dict(smoke=((5, 2),))])
def test_bad_config_is_an_input_error(bad):
    with pytest.raises(InputError, match="synthetic"):
        SyntheticClipConfig(**bad)


def test_instrument_band_covers_every_pixel_the_instrument_touches(monkeypatch):
    from surgseg.engines.video import synthetic

    clip = SyntheticClip(SyntheticClipConfig(size=(160, 120), frames=30, seed=9, presence=((0, 30),)))
    inst = clip.instruments[0]
    box = (0, 0, clip.width, clip.height)
    poses = [clip._pose(inst, t) for t in range(0, 30, 3)]
    banded = [synthetic._instrument_layer(box, pose, inst, clip.scale) for pose in poses]
    whole = np.array([[0, 0], [clip.width, 0], [clip.width, clip.height], [0, clip.height]], np.float64)
    monkeypatch.setattr(synthetic, "_band_quads", lambda *args: [whole])
    for pose, layers in zip(poses, banded):
        reference = synthetic._instrument_layer(box, pose, inst, clip.scale)
        assert reference[1].sum() > 100
        for got, want in zip(layers, reference):
            np.testing.assert_array_equal(got, want)


def domain_clip(seed: int, **kwargs) -> SyntheticClip:
    return SyntheticClip(SyntheticClipConfig(size=(160, 128), frames=12, seed=seed, domain=True, **kwargs))


def test_classic_clips_have_the_classic_look_and_a_full_field_of_view():
    clip = SyntheticClip(SyntheticClipConfig(size=(96, 64), frames=2, seed=3))
    assert clip.look.classic and clip.hud is None and clip.lens_maps is None
    assert clip.fov_mask.all()


def test_domain_clips_draw_varied_looks_from_the_seed():
    looks = [domain_clip(seed).look for seed in range(24)]
    assert len({look.fov for look in looks}) >= 4
    assert len({look.palette for look in looks}) >= 5
    assert sum(look.hud for look in looks) >= 12
    assert looks[5] == domain_clip(5).look


def test_look_does_not_depend_on_the_instrument_schedule():
    assert domain_clip(7).look == domain_clip(7, presence=()).look


@pytest.mark.parametrize("seed", range(8))
def test_nothing_outside_the_fov_or_under_on_screen_text_is_instrument(seed):
    clip = domain_clip(seed, presence=((0, 12),))
    for t in range(0, 12, 3):
        _, mask, _ = clip.render(t)
        assert not mask[~clip.fov_mask].any()
        if clip.hud is not None:
            assert not mask[clip.hud.opaque].any()


@pytest.mark.parametrize("kind", ["circle", "offset_circle", "rounded", "octagon"])
def test_field_of_view_shapes_leave_a_dark_border(kind):
    clip = domain_clip(11, fov=kind, palette="bowel")
    frame, _, _ = clip.render(0)
    border = ~clip.fov_mask
    if clip.hud is not None:
        border &= clip.hud.alpha == 0
    assert 0.4 < clip.fov_mask.mean() < 0.97
    assert np.median(frame[border].max(axis=1)) < 45
    assert np.median(frame[clip.fov_mask].max(axis=1)) > 60


def test_on_screen_text_appears_on_the_border_in_every_frame_and_the_clock_ticks():
    seed = next(s for s in range(40) if domain_clip(s, fov="circle").hud is not None)
    clip = SyntheticClip(SyntheticClipConfig(size=(160, 128), frames=60, seed=seed, domain=True, fov="circle"))
    first, _, _ = clip.render(0)
    later, _, _ = clip.render(59)
    text = clip.hud.alpha >= 128
    assert text.sum() > 50
    assert np.abs(first.astype(int) - later.astype(int))[~clip.fov_mask].max() > 100  # the clock's seconds changed


def test_detected_fov_matches_the_drawn_one():
    from surgseg.engines.fov import detect_fov

    for kind in ("circle", "rounded", "octagon"):
        clip = domain_clip(3, fov=kind, palette="fat")  # no dark lumen reaching the border in this look
        frame, _, _ = clip.render(0)
        found = detect_fov(frame).mask(*frame.shape[:2])
        iou = (found & clip.fov_mask).sum() / (found | clip.fov_mask).sum()
        assert iou > 0.9, kind


def test_instrument_stays_visible_in_domain_clips():
    for seed in range(6):
        clip = domain_clip(seed, presence=((0, 12),), occlusion=())
        visible = [bool(mask.any()) for _, mask, _ in clip]
        assert sum(visible) >= 11, seed


def test_instrument_free_domain_clips_are_all_background():
    clip = domain_clip(4, presence=())
    for frame, mask, tags in clip:
        assert not mask.any() and "absent" in tags


@pytest.mark.parametrize("bad", [dict(fov="hexagon"), dict(palette="lung")])
def test_unknown_look_is_an_input_error(bad):
    with pytest.raises(InputError, match="synthetic"):
        SyntheticClipConfig(**bad)
