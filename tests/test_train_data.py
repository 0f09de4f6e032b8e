"""Training data: pairing, checks, identical augmentation, determinism, mixing, sampler, synthetic haze."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA

from streamdehaze.errors import DataError
from streamdehaze.train.data import (
    ClearImages,
    EpochSampler,
    PairedImages,
    TrainSet,
    build_trainset,
    dihedral,
    load_val_pairs,
    parse_source,
)
from streamdehaze.train.haze import (
    HazeRanges,
    degrade,
    fit_scattering,
    ground_plane,
    random_haze,
    rehaze,
    scatter,
    sky_mask,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, OpenMP threads waiting for each other cost 10×."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1]))


def _texture(h, w, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 200).astype(np.uint8)


def make_pairs(root, n=3, h=40, w=52, names=None):
    """Pairs whose hazy image is an exact pixel function of the clear one: hazy = clear // 2 + 50."""
    for i in range(n):
        clear = _texture(h, w, i)
        stem = f"{i:04d}"
        _write(root / "clear" / f"{stem}.png", clear)
        hazy_name = (names or {}).get(i, f"{stem}_0.8_0.2.png")
        _write(root / "hazy" / hazy_name, clear // 2 + 50)
    return root


def test_parse_source():
    assert parse_source("a/b").kind == "pairs" and parse_source("a/b").weight == 1.0
    s = parse_source("synth:clips/drive.mp4@0.5")
    assert (s.kind, str(s.path), s.weight) == ("synth", "clips/drive.mp4", 0.5)
    s = parse_source("clear:sunny@3")
    assert (s.kind, str(s.path), s.weight) == ("clear", "sunny", 3.0)
    with pytest.raises(DataError, match="weight"):
        parse_source("a@x")
    with pytest.raises(DataError, match="positive"):
        parse_source("a@0")


def test_reside_and_same_name_pairing(tmp_path):
    root = make_pairs(tmp_path / "d", n=2, names={0: "0000_1.png", 1: "0001.png"})
    src = PairedImages(root)
    assert [(h.name, c.name) for h, c in src.pairs] == [("0000_1.png", "0000.png"), ("0001.png", "0001.png")]
    hazy, clear = src.load(1)
    assert hazy.shape == clear.shape == (40, 52, 3)


def test_bad_folders_raise_before_training(tmp_path):
    with pytest.raises(DataError, match="not found"):
        build_trainset([str(tmp_path / "missing")], 16)
    (tmp_path / "empty" / "hazy").mkdir(parents=True)
    (tmp_path / "empty" / "clear").mkdir()
    with pytest.raises(DataError, match="no images"):
        build_trainset([str(tmp_path / "empty")], 16)
    root = make_pairs(tmp_path / "mis", n=2)
    _write(root / "hazy" / "0099_1.png", _texture(40, 52, 9))  # no clear 0099.*
    with pytest.raises(DataError, match="no clear partner"):
        build_trainset([str(root)], 16)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="hazy/ and clear/"):
        build_trainset([str(tmp_path / "flat")], 16)
    size = make_pairs(tmp_path / "size", n=1)
    _write(size / "clear" / "0000.png", _texture(100, 52, 0))
    with pytest.raises(DataError, match="52×40 but its clear partner"):
        build_trainset([str(size)], 16)


def test_reside_border_is_cropped(tmp_path):
    root = tmp_path / "its"
    clear = _texture(60, 72, 1)
    _write(root / "clear" / "1.png", clear)
    _write(root / "hazy" / "1_1_0.9.png", clear[10:50, 10:62] // 2 + 50)  # 20 px border, as RESIDE ITS
    hazy, c = PairedImages(root).load(0)
    np.testing.assert_array_equal(hazy, c // 2 + 50)


@pytest.mark.parametrize("crop", [16, 32])
def test_augmentation_is_identical_for_both_images(tmp_path, crop):
    ds = build_trainset([str(make_pairs(tmp_path / "d"))], crop, seed=5)
    seen = set()
    for epoch in range(3):
        for i in range(len(ds)):
            s = ds[(epoch, i)]
            assert s["hazy"].shape == s["clear"].shape == (3, crop, crop)
            clear8 = (s["clear"] * 255).round()
            torch.testing.assert_close((s["hazy"] * 255).round(), torch.div(clear8, 2, rounding_mode="floor") + 50)
            seen.add(round(float(s["clear"].sum()), 3))
    assert len(seen) > 6  # crops/flips/rotations vary between epochs


def test_samples_are_a_function_of_seed_epoch_index(tmp_path):
    root = str(make_pairs(tmp_path / "d"))
    a, b = build_trainset([root], 16, seed=1), build_trainset([root], 16, seed=1)
    torch.testing.assert_close(a[(2, 1)]["clear"], b[(2, 1)]["clear"], rtol=0, atol=0)
    assert not torch.equal(a[(2, 1)]["clear"], a[(3, 1)]["clear"])
    c = build_trainset([root], 16, seed=2)
    assert not torch.equal(a[(2, 1)]["clear"], c[(2, 1)]["clear"])


def test_dihedral_covers_eight_distinct_transforms():
    x = torch.arange(9.0).view(1, 3, 3)
    outs = {tuple(dihedral(x, f, r).flatten().tolist()) for f in (False, True) for r in range(4)}
    assert len(outs) == 8


def test_mirror_augmentation_keeps_images_upright(tmp_path):
    """A vertical ramp (dark top, bright bottom): mirrored crops keep it; dihedral ones turn it."""
    ramp = np.repeat(np.linspace(0, 250, 40)[:, None, None], 52, 1).repeat(3, 2).astype(np.uint8)
    ramp[:, :26] //= 2  # left half darker: a left-right flip is visible too
    _write(tmp_path / "d" / "clear" / "0001.png", ramp)
    _write(tmp_path / "d" / "hazy" / "0001_1.png", ramp // 2 + 60)

    def orientations(augment):
        ds = build_trainset([str(tmp_path / "d")], 32, seed=3, augment=augment)
        out = set()
        for epoch in range(24):
            c = ds[(epoch, 0)]["clear"].mean(0)
            upright = bool(c[-1].mean() > c[0].mean() + 0.2)  # bottom row brighter than the top one
            mirrored = bool(c[:, 0].mean() > c[:, -1].mean())  # left column brighter than the right one
            out.add((upright, mirrored) if upright else "turned")
        return out

    assert orientations("mirror") == {(True, False), (True, True)}
    assert "turned" in orientations("dihedral")


class _Fake:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_weighted_mixing_counts_and_coverage():
    ds = TrainSet([(_Fake(4), 2.0), (_Fake(6), 0.5), (_Fake(3), 1.0)], crop=16, seed=0)
    assert len(ds) == 8 + 3 + 3
    for epoch in range(2):
        locs = [ds.locate(epoch, i) for i in range(len(ds))]
        first = sorted(item for src, item in locs if src == 0)
        assert first == [0, 0, 1, 1, 2, 2, 3, 3]  # @2: every image twice
        assert [item for src, item in locs if src == 2] == [0, 1, 2]
    halves = [{item for src, item in (ds.locate(e, i) for i in range(len(ds))) if src == 1} for e in range(6)]
    assert all(len(h) == 3 for h in halves) and len(set().union(*halves)) == 6  # @0.5: different halves


def test_sampler_splits_like_distributed_and_skips():
    ds = TrainSet([(_Fake(12), 1.0)], crop=16)
    single = EpochSampler(ds, 1, 0, seed=3)
    single.set_epoch(1)
    order = [i for _, i in single]
    ranks = []
    for r in range(2):
        s = EpochSampler(ds, 2, r, seed=3)
        s.set_epoch(1)
        ranks.append([i for _, i in s])
    assert ranks[0] == order[0::2] and ranks[1] == order[1::2]
    single.set_position(1, 5)
    keys = list(single)
    assert len(single) == len(keys) == 7 and [i for _, i in keys] == order[5:] and keys[0][0] == 1


def test_scattering_model():
    clear = torch.full((1, 3, 2, 2), 0.2)
    depth = torch.tensor([[[[0.0, 0.5], [1.0, 2.0]]]])
    a = torch.tensor([0.9, 0.8, 1.0])
    hazy = scatter(clear, depth, 1.2, a)
    t = torch.exp(-1.2 * depth)
    torch.testing.assert_close(hazy, 0.2 * t + a.view(1, 3, 1, 1) * (1 - t))


def test_ground_plane_recedes_to_the_horizon():
    d = ground_plane(100, 4, top=0, full_h=100, horizon=0.4, r0=0.1)[0, 0, :, 0]
    assert torch.all(d[:40] == 1)
    assert torch.all(d[41:].diff() < 0)  # nearer towards the bottom
    assert d[-1].item() == pytest.approx(0.1 / (1 + 0.1 - 0.5 / 60), rel=0.02)
    crop = ground_plane(20, 4, top=70, full_h=100, horizon=0.4, r0=0.1)[0, 0, :, 0]
    torch.testing.assert_close(crop, d[70:90])  # a crop keeps the picture's geometry


def test_sky_is_far_and_haze_is_plausible():
    clear = torch.full((1, 3, 64, 64), 0.3)
    clear[:, :, :20] = 0.9  # flat bright top: sky
    gray = clear.mean(1, keepdim=True)
    assert sky_mask(gray, 0, 64)[0, 0, :16].all() and not sky_mask(gray, 0, 64)[0, 0, 30:].any()
    for seed in range(8):
        hazy, p = random_haze(clear, torch.Generator().manual_seed(seed))
        assert 0.5 <= p["beta"] <= 2.5 and 0.7 <= p["airlight"] <= 1.0
        assert hazy.shape == clear.shape and 0 <= hazy.min() and hazy.max() <= 1
        assert torch.equal(hazy, torch.round(hazy * 255) / 255)  # 8-bit like a photograph
        assert hazy[:, :, 32:].mean() > clear[:, :, 32:].mean()  # haze lifts dark content towards A
        # sky at depth 1 gets the strongest haze: within the model's range for t = exp(-beta)
        t_sky = math.exp(-p["beta"])
        expect = 0.9 * t_sky + p["airlight"] * (1 - t_sky)
        assert abs(hazy[0, :, 2:10].mean().item() - expect) < 0.08


def test_synthetic_source_from_folder_and_video(tmp_path):
    for i in range(2):
        _write(tmp_path / "clear" / f"f{i}.png", _texture(48, 64, i))
    ds = build_trainset([f"synth:{tmp_path / 'clear'}@2"], 32)
    assert len(ds) == 4
    s = ds[(0, 3)]
    assert s["hazy"].shape == (3, 32, 32) and not torch.equal(s["hazy"], s["clear"])
    import av

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        st = out.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            for pkt in st.encode(av.VideoFrame.from_ndarray(_texture(48, 64, i), format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    src = ClearImages(video, max_frames=3)
    assert len(src) == 3 and src.load(0).shape == (48, 64, 3)
    with pytest.raises(DataError, match="image folder or a video"):
        ClearImages(tmp_path / "nothing.txt")


def test_haze_free_source_is_clear_to_clear(tmp_path):
    for i in range(3):
        _write(tmp_path / "sunny" / f"f{i}.png", _texture(48, 64, i))
    ds = build_trainset([f"clear:{tmp_path / 'sunny'}@2"], 32)
    assert len(ds) == 6
    for i in range(6):
        s = ds[(0, i)]
        assert torch.equal(s["hazy"], s["clear"])  # no haze added: the network learns to leave it alone
    noisy = build_trainset([f"clear:{tmp_path / 'sunny'}"], 32, camera=1.0)[(0, 0)]
    assert not torch.equal(noisy["hazy"], noisy["clear"])  # --camera still degrades the input
    with pytest.raises(DataError, match="clear:.*folder holds no images"):
        (tmp_path / "empty").mkdir()
        build_trainset([f"clear:{tmp_path / 'empty'}"], 32)


def test_val_pairs_centre_crop(tmp_path):
    root = make_pairs(tmp_path / "v", n=5)
    pairs = load_val_pairs(root, limit=3, crop=24)
    assert len(pairs) == 3 and pairs[0][0].shape == (1, 3, 24, 24)


@pytest.mark.data
def test_real_folders_pair_and_sample():
    ds = build_trainset([str(DATA / "sots-indoor" / "train"), f"{DATA / 'real-pairs'}@2"], 128)
    assert len(ds) == 175 + 28
    s = ds[(0, len(ds) - 1)]
    assert s["hazy"].shape == (3, 128, 128) and 0 <= s["hazy"].min() and s["hazy"].max() <= 1


def test_work_side_scales_the_image_before_cropping(tmp_path):
    """With a working size the crop sees the whole (shrunk) scene: a 400 px ramp scaled to a short
    side of 100 spans almost all of its range in a 96 px crop, not a quarter of it."""
    ramp = np.repeat(np.linspace(0, 255, 400)[None, :, None], 400, 0).repeat(3, 2).astype(np.uint8)
    _write(tmp_path / "d" / "clear" / "0001.png", ramp)
    _write(tmp_path / "d" / "hazy" / "0001_1.png", ramp // 2 + 50)
    native = build_trainset([str(tmp_path / "d")], 96, seed=1)
    shrunk = build_trainset([str(tmp_path / "d")], 96, seed=1, work_side=(100, 100))

    def span(s):  # value range across the crop, whichever way it was rotated
        return float(s["clear"].amax() - s["clear"].amin())

    assert span(native[(0, 0)]) < 0.3
    s = shrunk[(0, 0)]
    assert span(s) > 0.9
    # both images shrink alike: hazy stays the same function of clear (within interpolation rounding)
    torch.testing.assert_close(s["hazy"], s["clear"] / 2 + 50 / 255, atol=2 / 255, rtol=0)
    torch.testing.assert_close(shrunk[(0, 0)]["clear"], s["clear"])  # still a function of (seed, epoch, index)


def _scattered_pair(airlight=0.9, seed=0, h=48, w=64):
    """A clear texture and its exact scattering-model haze with a smooth transmission map."""
    g = torch.Generator().manual_seed(seed)
    clear = torch.rand(1, 3, h, w, generator=g) * 0.8
    t = torch.linspace(0.3, 0.9, w).view(1, 1, 1, w).expand(1, 1, h, w)
    return clear * t + airlight * (1 - t), clear, t


def test_fit_scattering_recovers_airlight_and_transmission():
    hazy, clear, t = _scattered_pair(airlight=0.9)
    airlight, t_fit, err = fit_scattering(hazy, clear)
    assert airlight == pytest.approx(0.9, abs=1e-6) and err < 1e-4
    torch.testing.assert_close(t_fit, t, atol=1e-3, rtol=0)


def test_rehaze_changes_the_density_and_keeps_pairs_the_model_does_not_fit():
    hazy, clear, t = _scattered_pair(airlight=1.0)
    g = torch.Generator().manual_seed(0)
    same, kept = rehaze(hazy, clear, g, exponent=(1.0, 1.0))
    assert kept is clear  # no recolouring asked for
    assert (same - hazy).abs().max() <= 0.5 / 255 + 1e-6  # s = 1: the same haze, 8-bit quantised
    thicker, _ = rehaze(hazy, clear, g, exponent=(2.0, 2.0))
    torch.testing.assert_close(thicker, (clear * t**2 + 1 - t**2), atol=0.5 / 255 + 1e-5, rtol=0)
    assert float((1 - thicker).abs().mean()) < float((1 - hazy).abs().mean())  # closer to the airlight
    unrelated = torch.rand(hazy.shape, generator=g)  # real haze is no per-pixel scattering of the clear image
    assert all(a is b for a, b in zip(rehaze(unrelated, clear, g, recolour=1.0), (unrelated, clear)))


def test_recolour_gives_new_scene_colours_under_the_same_haze():
    hazy, clear, t = _scattered_pair(airlight=0.9)
    g = torch.Generator().manual_seed(4)
    new_hazy, new_clear = rehaze(hazy, clear, g, exponent=(1.0, 1.0), recolour=1.0)
    assert (new_clear - clear).abs().mean() > 0.02  # another colouring of the scene
    airlight, t_fit, err = fit_scattering(new_hazy, new_clear)  # the same haze model over it
    assert airlight == pytest.approx(0.9, abs=0.02) and err < 1 / 255
    torch.testing.assert_close(t_fit, t, atol=0.05, rtol=0)
    tints = {
        tuple(round(float(v), 3) for v in rehaze(hazy, clear, g, recolour=1.0)[1].mean((0, 2, 3))) for _ in range(5)
    }
    assert len(tints) == 5  # every draw its own tone curve and white balance


def test_trainset_rehazes_scattering_pairs_deterministically(tmp_path):
    clear = _texture(60, 80, 3)
    hazy = np.round(clear * 0.6 + 255 * 0.95 * 0.4).astype(np.uint8)  # t = 0.6, airlight 0.95
    _write(tmp_path / "d" / "clear" / "0001.png", clear)
    _write(tmp_path / "d" / "hazy" / "0001_1.png", hazy)
    plain = build_trainset([str(tmp_path / "d")], 32, seed=2)
    rehazed = build_trainset([str(tmp_path / "d")], 32, seed=2, rehaze=1.0)
    densities = []
    for epoch in range(6):
        a, b = plain[(epoch, 0)], rehazed[(epoch, 0)]
        torch.testing.assert_close(a["clear"], b["clear"])  # same crop and transform: only the haze differs
        torch.testing.assert_close(b["hazy"], rehazed[(epoch, 0)]["hazy"])  # a function of (seed, epoch, index)
        # recover this sample's transmission: hazy = clear·t + A(1 − t)
        t = ((0.95 - b["hazy"]) / (0.95 - b["clear"]).clamp_min(0.05)).median()
        densities.append(float(t))
    assert max(densities) - min(densities) > 0.1  # new densities, not the stored 0.6 every time
    assert all(0.6**1.7 - 0.03 < d < 0.6**0.5 + 0.03 for d in densities)
    # --recolour: the sample's clear image is the recoloured scene the haze was rendered over
    recoloured = build_trainset([str(tmp_path / "d")], 32, seed=2, rehaze=1.0, recolour=1.0)
    for epoch in range(3):
        a, c = plain[(epoch, 0)], recoloured[(epoch, 0)]
        assert (a["clear"] - c["clear"]).abs().mean() > 0.01  # new scene colours
        airlight, _, err = fit_scattering(c["hazy"][None], c["clear"][None])
        assert airlight == pytest.approx(0.95, abs=0.02) and err < 1 / 255  # still a pair: haze over this scene


def test_light_identity_and_camera_options_of_the_trainset(tmp_path):
    clear = _texture(60, 80, 3)
    hazy = np.round(clear * 0.6 + 255 * 0.95 * 0.4).astype(np.uint8)  # t = 0.6, airlight 0.95
    _write(tmp_path / "d" / "clear" / "0001.png", clear)
    _write(tmp_path / "d" / "hazy" / "0001_1.png", hazy)
    spec = [str(tmp_path / "d")]
    plain = build_trainset(spec, 32, seed=2)
    light = build_trainset(spec, 32, seed=2, rehaze=1.0, light=1.0)
    identity = build_trainset(spec, 32, seed=2, identity=1.0)
    camera = build_trainset(spec, 32, seed=2, camera=1.0)
    for epoch in range(4):
        p = plain[(epoch, 0)]
        # light haze: a tenth to a third of the pair's optical depth, so t = 0.6^s with s in LIGHT_EXPONENT
        lt = light[(epoch, 0)]
        torch.testing.assert_close(lt["clear"], p["clear"])  # only the haze differs
        t = float(((0.95 - lt["hazy"]) / (0.95 - lt["clear"]).clamp_min(0.05)).median())
        assert 0.6**0.4 - 0.03 < t < 0.6**0.03 + 0.01
        # identity: haze-free input, the target is the same image
        idn = identity[(epoch, 0)]
        assert torch.equal(idn["hazy"], idn["clear"]) and torch.equal(idn["clear"], p["clear"])
        # camera: the same hazy crop with noise and JPEG on top (this texture is pixel noise, which JPEG
        # does not keep): changed, 8-bit, at the same levels
        cam = camera[(epoch, 0)]
        assert float((cam["hazy"] - p["hazy"]).abs().mean()) > 0 and torch.equal(cam["clear"], p["clear"])
        assert abs(float(cam["hazy"].mean() - p["hazy"].mean())) < 0.01
        assert torch.equal(cam["hazy"], torch.round(cam["hazy"] * 255) / 255)
        torch.testing.assert_close(cam["hazy"], camera[(epoch, 0)]["hazy"])  # deterministic


def test_random_haze_light_and_patchy():
    clear = torch.full((1, 3, 64, 64), 0.3)
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        hazy, p = random_haze(clear, g, light=True)
        assert 0.03 <= p["beta"] <= 0.5 and 0 <= p["patchy"] <= 0.6
        assert float((hazy - clear).abs().mean()) < float(0.6 * (1 - math.exp(-0.5))) + 0.02
    # patchy density: with a flat scene and no ground plane the haze still varies over the image
    flat = HazeRanges(p_ground=0.0, patchy=(0.6, 0.6), field_cells=(2, 2))
    uniform = HazeRanges(p_ground=0.0, patchy=(0.0, 0.0), field_cells=(2, 2))
    a = random_haze(clear, torch.Generator().manual_seed(1), ranges=flat)[0]
    b = random_haze(clear, torch.Generator().manual_seed(1), ranges=uniform)[0]
    assert float((a - b).abs().max()) > 0.02


def test_degrade_adds_noise_and_compression_not_a_shift():
    img = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64) * torch.tensor([0.5, 1.0, 0.8]).view(
        1, 3, 1, 1
    )
    out = degrade(img, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and torch.equal(out, torch.round(out * 255) / 255)
    assert 0 < float((out - img).abs().mean()) < 0.02  # a smooth image: noise and blocks, a few levels
    assert abs(float(out.mean() - img.mean())) < 0.01  # noise and JPEG keep the image's levels
    torch.testing.assert_close(out, degrade(img, torch.Generator().manual_seed(0)))
