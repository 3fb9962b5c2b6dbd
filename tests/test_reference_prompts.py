"""Learned reference prompts: NumPy inference = the torch twin, files, the ONNX path, training lowers the loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.learning.reference import Reference, ReferencePredictor, ReferenceUses, unit
from clickmask.learning.reference_prompts import PromptedPredictor, ReferencePrompts

torch = pytest.importorskip("torch")

from clickmask.training.reference_prompts import DualPromptEncoder, RefPair, evaluate_pairs, train_encoder  # noqa: E402


def _random_encoder(seed: int = 0, channels: int = 256, hidden: int = 16) -> DualPromptEncoder:
    enc = DualPromptEncoder(channels, hidden, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for side in enc.sides.values():
            side[2].weight.copy_(0.05 * torch.randn(side[2].weight.shape, generator=gen))
            side[2].bias.copy_(0.05 * torch.randn(side[2].bias.shape, generator=gen))
    return enc


def _protos(rng, c: int = 256):
    return unit(rng.normal(size=c)), unit(rng.normal(size=c))


def test_numpy_prompt_matches_the_torch_encoder():
    rng = np.random.default_rng(0)
    enc = _random_encoder()
    prompts = enc.to_prompts()
    emb = rng.normal(size=(1, 256, 8, 8)).astype(np.float32)
    pos, neg = _protos(rng)
    for negative in (neg, None):
        with torch.no_grad():
            want = enc.bias(torch.from_numpy(emb), torch.from_numpy(pos),
                            None if negative is None else torch.from_numpy(negative)).numpy()
        got = prompts.encode(Reference(pos, negative)).bias(emb)
        assert np.abs(want).max() > 1e-2  # not a trivial zero
        np.testing.assert_allclose(got, want, atol=1e-5)
    # positive_only drops the negative side
    np.testing.assert_allclose(prompts.encode(Reference(pos, neg), negative=False).bias(emb),
                               prompts.encode(Reference(pos, None)).bias(emb), atol=1e-6)


def test_a_new_encoder_changes_nothing():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(1, 256, 4, 4)).astype(np.float32)
    prompt = DualPromptEncoder().to_prompts().encode(Reference(*_protos(rng)))
    np.testing.assert_array_equal(prompt(emb), emb)


def test_file_round_trip_and_errors(tmp_path):
    prompts = _random_encoder().to_prompts({"pascalpart_images": ["a.jpg"], "steps": 3})
    path = tmp_path / "p.npz"
    prompts.save(path)
    back = ReferencePrompts.load(path)
    assert back.trained_on == {"a.jpg"} and back.meta["steps"] == 3
    for k, v in prompts.params.items():
        np.testing.assert_array_equal(back.params[k], v)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ClickmaskError, match="bad.npz"):
        ReferencePrompts.load(tmp_path / "bad.npz")
    with pytest.raises(ClickmaskError, match="missing"):
        ReferencePrompts({})


def test_learned_use_parses_and_needs_weights():
    uses = ReferenceUses.parse("learned,positive_only")
    assert uses.learned and not uses.first_click and not uses.negative
    assert ReferenceUses.parse(uses.text()) == uses
    first = ReferenceUses.parse("learned_first")
    assert first.learned and first.learned_first and first.text() == "learned_first"
    assert not ReferenceUses().learned  # the app's uses are unchanged


# with the model --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decoder(model_spec):
    from clickmask.training.torch_decoder import TorchSamDecoder

    torch.set_num_threads(1)
    return TorchSamDecoder.from_onnx(model_spec.decoder)


@pytest.fixture(scope="module")
def two_parts(sam_predictor):
    """Two two-part objects on one synthetic image: its embedding, top halves, wholes."""
    from synthetic import two_part_objects

    image, tops, wholes = two_part_objects([(30, 40, 130, 200), (180, 50, 290, 210)])
    emb, _ = sam_predictor.image_embedding(image)
    return image, emb.copy(), tops, wholes


@pytest.mark.model
def test_onnx_decoder_with_the_prompt_matches_the_torch_path(sam_predictor, decoder, two_parts):
    """The prompt through the ONNX decoder (NumPy) = through the torch twin, <= 1e-3 in low-res logits."""
    from clickmask.training.simulate import prompts as click_prompts
    from clickmask.engine.clicks import Click
    from clickmask.training.torch_decoder import decode

    image, emb, tops, wholes = two_parts
    enc = _random_encoder(3)
    ref = Reference.from_masks(emb, image.shape[:2], tops[0], wholes[0] & ~tops[0])
    prompted = enc.to_prompts().encode(ref)(emb)
    assert np.abs(prompted - emb).max() > 1e-2
    coords, labels = click_prompts([Click(200.0, 80.0, True)], image.shape[:2])
    onnx_m, onnx_s = sam_predictor.decode_candidates(coords, labels, None, embedding=prompted)
    with torch.no_grad():
        fn = enc.prompted(torch.from_numpy(ref.positive), torch.from_numpy(ref.negative))
        m, s = decode(decoder, fn(torch.from_numpy(emb)), torch.from_numpy(coords), torch.from_numpy(labels))
    assert np.abs(m.numpy() - onnx_m).max() <= 1e-3
    assert np.abs(s.numpy() - onnx_s).max() <= 1e-4


@pytest.mark.model
def test_training_steps_lower_the_loss(decoder, two_parts):
    """A few steps on a part target (the other object's top half as reference) lower its fixed-click loss."""
    from clickmask.training.loop import ClickConfig, TrainSample

    image, emb, tops, wholes = two_parts
    ref = Reference.from_masks(emb, image.shape[:2], tops[0], wholes[0] & ~tops[0])
    pair = RefPair(TrainSample(emb, tops[1], tops[1].shape, "top"), ref.positive, ref.negative, "synthetic")
    config = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=0, batch_size=2, first_loss="mean")
    enc = DualPromptEncoder(hidden=16)
    before = evaluate_pairs(decoder, enc, [pair], config, seed=1)
    losses = train_encoder(decoder, enc, {"synthetic": [pair]}, 6, 1e-2, np.random.default_rng(0), config,
                           drop_negative=0.0)
    after = evaluate_pairs(decoder, enc, [pair], config, seed=1)
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert after["loss"] < 0.9 * before["loss"], (before, after)
    assert not any(p.requires_grad for p in decoder.parameters())


@pytest.mark.model
def test_central_first_loss_follows_the_engine_choice(decoder, two_parts):
    """With first_loss="central" the first click's mask fed on is the one the engine's first=central picks."""
    from clickmask.engine.refine.first_click import pick_central
    from clickmask.training.loop import ClickConfig, TrainSample, sequence_loss
    from clickmask.training.simulate import initial_clicks, low_res_target, prompts, random_click_counts
    from clickmask.training.torch_decoder import INPUT_SIDE, LOW_RES, decode

    image, emb, tops, wholes = two_parts
    config = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=0, first_loss="central")
    differs = 0
    for gt_mask in (tops[1], wholes[1]):
        sample = TrainSample(emb, gt_mask, gt_mask.shape, "target")
        target, valid = low_res_target(gt_mask)
        for seed in range(6):
            loss, ious = sequence_loss(decoder, None, sample, np.random.default_rng(seed), config)
            rng = np.random.default_rng(seed)  # the same first click as the loop draws
            clicks = initial_clicks(sample.gt, rng, *random_click_counts(rng, 1, 0), regions=sample.regions())
            coords, labels = prompts(clicks, sample.hw)
            with torch.no_grad():
                masks, scores = decode(decoder, torch.from_numpy(emb), torch.from_numpy(coords),
                                       torch.from_numpy(labels), None)
            k = pick_central(masks.numpy(), scores.numpy(), coords[0] * LOW_RES / INPUT_SIDE)
            differs += k != 1 + int(np.argmax(scores.numpy()[1:]))
            pred, gt, ok = masks[k].numpy() > 0, target > 0.5, valid > 0
            assert ious[0] == pytest.approx((pred & gt & ok).sum() / max(1, ((pred | gt) & ok).sum()), abs=1e-6)
            assert float(loss.detach()) > 0
    assert differs, "the clicks never tell the engine's rule from SAM's: the test would not see a regression"


@pytest.mark.model
def test_reference_predictor_decodes_with_the_learned_prompt(sam_predictor, two_parts):
    from clickmask.engine.clicks import Click
    from clickmask.engine.refine import RefinedPredictor

    image, emb, tops, wholes = two_parts
    with pytest.raises(ClickmaskError, match="learned"):
        ReferencePredictor(RefinedPredictor(sam_predictor), Reference(unit(np.ones(256))), ReferenceUses.parse("learned"))
    prompts = _random_encoder(5).to_prompts()
    predictor = ReferencePredictor(RefinedPredictor(sam_predictor), prompts=prompts)
    assert isinstance(predictor.base, PromptedPredictor)
    reference = predictor.reference_of(image, tops[0], wholes[0] & ~tops[0])
    predictor.set_image(image)
    raw = predictor.base.raw_embedding.copy()
    click = Click(200.0, 80.0, True)
    plain = predictor.predict([click]).low_res_logits.copy()
    predictor.set_reference(reference, ReferenceUses.parse("learned"))
    np.testing.assert_allclose(predictor.base.embedding, prompts.encode(reference)(raw), atol=1e-6)
    pred = predictor.predict([click])
    assert np.abs(pred.low_res_logits - plain).max() > 1e-3
    # learned_first: the prompt on the first click only; the second click decodes the raw embedding
    predictor.set_reference(reference, ReferenceUses.parse("learned_first"))
    first = predictor.predict([click])
    np.testing.assert_allclose(first.low_res_logits, pred.low_res_logits, atol=1e-5)
    predictor.predict([click, Click(60.0, 60.0, False)], first)
    np.testing.assert_array_equal(predictor.base.embedding, raw)
    predictor.set_reference(None)
    np.testing.assert_array_equal(predictor.base.embedding, raw)
    np.testing.assert_allclose(predictor.predict([click]).low_res_logits, plain, atol=1e-5)


@pytest.mark.model
def test_eval_learned_prompts_are_held_out(model_spec, tmp_path, capsys):
    """--reference-prompts: a file trained on im0 evaluates im1's targets only, every configuration."""
    from clickmask.cli import main
    from test_learning_reference import _part_dataset

    _part_dataset(tmp_path)
    weights = tmp_path / "p.npz"
    _random_encoder(7).to_prompts({"pascalpart_images": ["im0.jpg"]}).save(weights)
    out_json = tmp_path / "ref.json"
    code = main(["eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--reference", "--max-clicks", "2",
                 "--configs", "none;learned:learned", "--reference-prompts", str(weights), "--json", str(out_json)])
    err = capsys.readouterr().err
    assert code == 0, err
    report = json.loads(out_json.read_text())
    assert report["options"]["left_out_trained_on"] == 4
    for entry in report["configs"].values():
        assert entry["n"] == 4 and all(name.startswith("im1") for name in entry["per_target"])
    code = main(["eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--reference", "--configs",
                 "learned:learned"])
    assert code == 2 and "trained file" in capsys.readouterr().err


@pytest.mark.model
def test_eval_learned_prompts_fit_to_the_test(model_spec, tmp_path, capsys):
    """--reference-prompts-fit (the headroom): the file trained on the target's image, so im0's targets."""
    from clickmask.cli import main
    from test_learning_reference import _part_dataset

    _part_dataset(tmp_path)
    weights = tmp_path / "p.npz"
    _random_encoder(7).to_prompts({"pascalpart_images": ["im0.jpg"]}).save(weights)
    out_json = tmp_path / "ref.json"
    code = main(["eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--reference", "--max-clicks", "1",
                 "--configs", "learned:learned", "--reference-prompts", str(weights), "--reference-prompts-fit",
                 "--json", str(out_json)])
    assert code == 0, capsys.readouterr().err
    entry = json.loads(out_json.read_text())["configs"]["learned"]
    assert entry["n"] == 4 and all(name.startswith("im0") for name in entry["per_target"])


def test_first_click_losses_and_cli_options():
    from clickmask.cli import build_parser
    from clickmask.cli.train_reference import command, parse_fold, parse_weights
    from clickmask.training.loop import ClickConfig

    for name in ("best", "mean", "expected", "central"):
        assert ClickConfig(first_loss=name).first_loss == name
    with pytest.raises(ClickmaskError, match="first-click loss"):
        ClickConfig(first_loss="worst")
    assert parse_fold("1/2") == (1, 2) and parse_fold("none")[0] is None
    for bad in ("2/2", "1", "a/b"):
        with pytest.raises(ClickmaskError, match="--fold"):
            parse_fold(bad)
    assert parse_weights("PascalPart=0.5,COCO128=1") == {"PascalPart": 0.5, "COCO128": 1.0}
    with pytest.raises(ClickmaskError, match="--weights"):
        parse_weights("Berkeley=1")
    # the default first-click loss is the engine's own choice; summary.json keeps the command, every option spelled out
    args = build_parser().parse_args(["train-reference", "--out", "runs/x", "--fold", "1/2", "--steps", "7"])
    assert args.first_loss == "central"
    again = build_parser().parse_args(command(args).partition("clickmask ")[2].split())
    assert vars(again) == vars(args)
