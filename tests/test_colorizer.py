"""The Colorizer: one object for every front end; decoding settings are call arguments; explicit weight sources."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import polychrome
from polychrome import hub
from polychrome.colorizer import Colorizer, ColorizeResult
from polychrome.models import create_model
from polychrome.models.card import DEFAULT_WORKING_SIZE, ModelCard


@pytest.fixture(scope="module")
def cic() -> Colorizer:
    """A seeded, untrained cicgan-small: a classification model with a temperature and a confidence map."""
    torch.manual_seed(0)
    model = create_model("cicgan-small")
    return Colorizer(model, ModelCard.for_model(model, working_size=48))


def test_from_pretrained_default_takes_pil_and_numpy(photo):
    c = polychrome.Colorizer.from_pretrained("default")
    assert c.card.architecture == "effnet-cic" and c.card.working_size == 256 and not c.card.flip_average
    arr = photo(30, 41)
    out = c(arr)
    assert isinstance(out, ColorizeResult) and out.confidence is None and out.ab is None
    assert out.image.shape == arr.shape and out.image.dtype == np.uint8
    img = c(Image.fromarray(arr).convert("LA")).image  # a grey photo with alpha comes back RGBA
    assert isinstance(img, Image.Image) and img.mode == "RGBA" and img.size == (41, 30)
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), c(np.asarray(Image.fromarray(arr).convert("L"))).image)
    assert np.array_equal(polychrome.colorize(arr), out.image)  # the API is a thin layer over a cached Colorizer


def test_result_carries_confidence_and_working_ab(cic, photo):
    arr = photo(40, 52)
    r = cic(arr, confidence=True, return_ab=True)
    assert r.confidence.shape == (40, 52) and 0 <= r.confidence.min() and r.confidence.max() <= 1
    assert r.ab.shape == (1, 2, *cic.working_shape(40, 52))
    assert np.array_equal(r.image, cic(arr).image)  # the map comes from the same call, the colours unchanged


def test_two_threads_two_temperatures_get_what_single_calls_give(cic, photo):
    arr = photo(48, 64)
    want = {t: cic(arr, temperature=t).image for t in (0.1, 1.0)}
    assert not np.array_equal(want[0.1], want[1.0])
    got: dict[float, list[np.ndarray]] = {0.1: [], 1.0: []}
    start = threading.Barrier(2)

    def work(t: float) -> None:
        start.wait()
        for _ in range(6):
            got[t].append(cic(arr, temperature=t).image)

    threads = [threading.Thread(target=work, args=(t,)) for t in (0.1, 1.0)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t, outs in got.items():
        assert len(outs) == 6 and all(np.array_equal(o, want[t]) for o in outs), t
    assert cic.card.temperature == 0.38 and cic.model.temperature == 0.38  # nothing was set on the model


def test_temperature_and_confidence_are_checked_against_the_card(tiny_model, photo):
    with pytest.raises(ValueError, match="no decoding temperature"):
        tiny_model(photo(8, 8), temperature=0.5)
    with pytest.raises(ValueError, match="predicts no confidence map"):
        tiny_model(photo(8, 8), confidence=True)


def test_card_round_trips_through_json_and_reads_old_metadata():
    model = create_model("cicgan-small")
    card = ModelCard.for_model(model, working_size=96, about={"step": 7})
    assert (card.architecture, card.takes_hints, card.gives_confidence, card.temperature, card.decode_mode) == (
        "cicgan-small", False, True, 0.38, "annealed")
    back = ModelCard.from_json(card.to_json())
    assert back == card and back.about == {"step": 7}
    old = ModelCard.from_json({"model": "unet-32", "model_kwargs": {"pretrained": True}})  # before the card
    assert old.working_size == DEFAULT_WORKING_SIZE and old.kwargs == {} and not old.decodes
    assert ModelCard.for_model(create_model("icolorit-tiny")).takes_hints
    assert card.decoding(0.2) == {"temperature": 0.2, "decode_mode": "annealed"}
    with pytest.raises(ValueError, match="finite number > 0"):
        card.decoding(float("nan"))
    with pytest.raises(ValueError, match="infer_size"):
        ModelCard.from_json({"model": "unet-32", "infer_size": "big"})


def test_bundled_weights_load_with_their_cards():
    bundled = (("default", "effnet-cic", False, True), ("hints", "icolorit-tiny", True, False),
               ("unet-32", "unet-32", False, False))
    for name, arch, hints, decodes in bundled:
        card = Colorizer.from_pretrained(name).card
        assert (card.architecture, card.takes_hints, card.decodes) == (arch, hints, decodes), name
    card = Colorizer.from_pretrained("default").card
    assert card.temperature == 0.3 and (card.guided_filter.radius, card.guided_filter.eps) == (5, 100)
    assert not Colorizer.from_pretrained("hints").card.guided_filter  # hints are not smoothed away


def test_a_bare_name_is_the_bundled_model_even_with_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hints").mkdir()  # an empty folder named like the bundled model
    assert Colorizer.from_pretrained("hints").card.architecture == "icolorit-tiny"
    with pytest.raises(hub.ModelLoadError, match=r"weight file not found; for the bundled model 'hints', give its bare"):
        hub.load("./hints")
    with pytest.raises(hub.ModelLoadError, match="weight file not found"):
        hub.load(tmp_path / "hints")  # a Path is always a path
    (tmp_path / "mine").mkdir()
    with pytest.raises(hub.ModelLoadError, match=r"not a bundled model .* give it as a path: \./mine"):
        hub.load("mine")


def test_a_weight_folder_is_asked_for_as_a_path(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "mine")
    assert Colorizer.from_pretrained("./mine").card.working_size == 64
    assert hub.WeightSource.parse("mine/model.safetensors").kind == "safetensors"
    (tmp_path / "run.pt").touch()
    assert hub.WeightSource.parse("run.pt").kind == "checkpoint"
    assert hub.WeightSource.parse("default").kind == "bundled"


def test_explicit_card_overrides_the_working_size(tiny_model, photo):
    small = Colorizer(tiny_model.model, replace(tiny_model.card, working_size=16))
    calls = []
    hook = small.model.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        small(photo(40, 80))
        tiny_model(photo(40, 80), size=16)
    finally:
        hook.remove()
    assert calls == [(1, 1, 8, 16), (1, 1, 8, 16)]


def test_flip_average_is_the_mean_of_the_photo_and_its_mirror(cic, photo):
    arr = photo(40, 53, seed=3)  # an odd width: the half-resolution heads' grid is not symmetric
    flip = Colorizer(cic.model, replace(cic.card, flip_average=True))
    r = flip(arr, confidence=True, return_ab=True)
    a = cic(arr, confidence=True, return_ab=True)
    m = cic(np.ascontiguousarray(arr[:, ::-1]), confidence=True, return_ab=True)
    assert (a.ab - m.ab.flip(-1)).abs().max() > 0.1  # the model alone is not mirror-symmetric
    torch.testing.assert_close(r.ab, (a.ab + m.ab.flip(-1)) / 2, atol=1e-3, rtol=0)
    np.testing.assert_allclose(r.confidence, (a.confidence + m.confidence[:, ::-1]) / 2, atol=1e-4)
    mirrored = flip(np.ascontiguousarray(arr[:, ::-1]), return_ab=True)
    torch.testing.assert_close(mirrored.ab, r.ab.flip(-1), atol=1e-3, rtol=0)  # now it is
    assert ModelCard.from_json(flip.card.to_json()).flip_average and "flip_average" not in cic.card.to_json()
    with pytest.raises(ValueError, match="flip_average must be true or false"):
        ModelCard.from_json({"model": "unet-32", "flip_average": "yes"})


def test_flip_average_mirrors_the_hint_planes_too():
    from polychrome.pipeline.core import predict

    torch.manual_seed(0)
    model = create_model("icolorit-tiny").eval()
    L = torch.rand(1, 1, 32, 48) * 100
    hint_ab, hint_mask = torch.zeros(1, 2, 32, 48), torch.zeros(1, 1, 32, 48)
    hint_ab[..., 5:7, 3:5] = torch.tensor([60.0, 40.0])[:, None, None]
    hint_mask[..., 5:7, 3:5] = 1

    def run(L, ab, mask, flip=False):
        return predict(model, L, takes_hints=True, hint_ab=ab, hint_mask=mask, flip_average=flip).ab

    both = run(L, hint_ab, hint_mask, flip=True)
    want = (run(L, hint_ab, hint_mask) + run(L.flip(-1), hint_ab.flip(-1), hint_mask.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(both, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(run(L.flip(-1), hint_ab.flip(-1), hint_mask.flip(-1), flip=True), both.flip(-1), atol=1e-5, rtol=0)


def test_guided_filter_smooths_colour_within_regions_and_keeps_it_at_lightness_edges():
    """The card's guided filter: speckled ab on two flat regions of different lightness comes out smooth
    within each region (the speckle's spread falls) and the colour step between them stays where L steps."""
    from polychrome.models.card import GuidedFilter
    from polychrome.pipeline.core import guided_ab

    g = torch.Generator().manual_seed(0)
    L = torch.full((1, 1, 32, 48), 30.0)
    L[..., 24:] = 70.0  # a lightness edge between columns 23 and 24
    ab = torch.zeros(1, 2, 32, 48)
    ab[:, 0, :, :24], ab[:, 0, :, 24:] = 40.0, -20.0  # red left, green right, stepping at the same edge
    noisy = ab + 8 * torch.randn(ab.shape, generator=g)
    out = guided_ab(L, noisy, GuidedFilter(4, 100.0))
    assert out.shape == ab.shape and out.dtype == torch.float32
    inner = (slice(None), slice(None), slice(None), [*range(0, 18), *range(30, 48)])  # away from the edge
    assert (out - ab)[inner].std() < 0.35 * (noisy - ab)[inner].std()
    assert out[0, 0, :, 22].mean() > 30 and out[0, 0, :, 25].mean() < -10  # the step did not bleed across
    smeared = torch.nn.functional.avg_pool2d(noisy, 9, stride=1, padding=4, count_include_pad=False)
    assert smeared[0, 0, :, 22].mean() < 30  # a plain 9 x 9 blur would have carried it across
    assert torch.equal(guided_ab(L[..., :4, :4], noisy[..., :4, :4], GuidedFilter(4, 100.0)), noisy[..., :4, :4])
    from kornia.filters import guided_blur  # the same filter as kornia's, on a batch of odd-sized grids

    L2, ab2 = torch.rand(2, 1, 37, 29, generator=g) * 100, torch.randn(2, 2, 37, 29, generator=g) * 20
    torch.testing.assert_close(guided_ab(L2, ab2, GuidedFilter(3, 50.0)),
                               guided_blur(L2, ab2, 7, 50.0, border_type="reflect"), atol=1e-3, rtol=0)


def test_guided_filter_on_the_card_filters_what_the_colorizer_gives(cic, photo):
    from polychrome.models.card import CardError, GuidedFilter
    from polychrome.pipeline.core import guided_ab, lightness

    arr = photo(40, 53, seed=4)
    gf = GuidedFilter(2, 50.0)
    filtered = Colorizer(cic.model, replace(cic.card, guided_filter=gf))
    plain = cic(arr, return_ab=True).ab
    got = filtered(arr, return_ab=True).ab
    L_work = cic.working_l(lightness(arr.astype(np.float32) / 255))
    torch.testing.assert_close(got, guided_ab(L_work, plain, gf), atol=1e-4, rtol=0)
    assert (got - plain).abs().max() > 0.5
    card = ModelCard.from_json(filtered.card.to_json())
    assert card.guided_filter == gf and "guided_filter" not in cic.card.to_json()
    assert GuidedFilter.parse("5,100") == GuidedFilter(5, 100.0)
    for bad, msg in (({"radius": 0, "eps": 1}, "radius must be"), ({"radius": 2, "eps": -1}, "eps must be"),
                     ({"radius": 2}, "must be"), ([5, 100], "must be")):
        with pytest.raises(CardError, match=msg):
            ModelCard.from_json({"model": "unet-32", "guided_filter": bad})
    with pytest.raises(CardError, match="RADIUS,EPS"):
        GuidedFilter.parse("five")
