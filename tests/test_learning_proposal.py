"""Object-level check of ICP proposals: deepest point, peak re-ranking, real-model run."""

from __future__ import annotations

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.learning import proposal
from clickmask.learning.click_bank import ClickBank
from clickmask.learning.proposal import TokenMask, checked_proposal, deepest_point

G = 64
A = np.eye(8, dtype=np.float32)[1]  # the clicked part (a face)
B = np.eye(8, dtype=np.float32)[3]
C = np.eye(8, dtype=np.float32)[5]  # the rest of the object (a body)


def _cells(r0: int, r1: int, c0: int, c1: int, h: int = 512, w: int = 1024) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[r0 * 16 : r1 * 16, c0 * 16 : c1 * 16] = True
    return mask


def test_deepest_point_is_the_centre_of_the_clicked_part():
    mask = np.zeros((100, 200), bool)
    mask[10:31, 10:71] = True  # clicked part: centre (40, 20)
    mask[50:91, 120:191] = True  # a bigger part elsewhere
    assert deepest_point(mask, Click(12, 12, True)) == Click(40, 20, True)
    assert deepest_point(mask, Click(150, 60, True)) == Click(155, 70, True)
    off = Click(100, 5, True)
    assert deepest_point(mask, off) is off


def test_checked_proposal_prefers_the_whole_object_over_a_look_alike_patch(monkeypatch):
    """The plain proposal is a background patch that looks exactly like the first clicks;
    the object check segments the peaks and proposes the centre of the familiar object."""
    h, w = 512, 1024
    rng = np.random.default_rng(0)
    first = rng.normal(0, 0.02, (8, G, G)).astype(np.float32)
    first[0] += 1.0
    first[:, 4:12, 4:12] = C[:, None, None]
    first[:, 7:9, 7:9] = A[:, None, None]
    bank = ClickBank(smooth=1)
    bank.add_feature(A)
    bank.add_object(first[None], _cells(4, 12, 4, 12), (h, w))

    emb = rng.normal(0, 0.02, (8, G, G)).astype(np.float32)
    emb[0] += 1.0
    emb[:, 26:28, 50:52] = A[:, None, None]  # look-alike patch
    emb[:, 14:24, 20:30] = C[:, None, None]  # the next object, its face a little different
    emb[:, 18:20, 24:26] = (0.95 * A + 0.05 * B)[:, None, None]
    patch, face, body = _cells(26, 28, 50, 52), _cells(18, 20, 24, 26), _cells(14, 24, 20, 30)

    def hypothesis(token, mask):
        return TokenMask(token, np.full((256, 256), float(token), np.float32), np.where(mask, 2.0, -2.0))

    def fake_tokens(_predictor, click, _embedding, _hw):
        col, row = click.as_int()
        if patch[row, col]:
            return [hypothesis(1, patch)]
        if body[row, col]:
            return [hypothesis(1, face if face[row, col] else body), hypothesis(2, body)]
        return []

    monkeypatch.setattr(proposal, "token_masks", fake_tokens)
    plain = bank.propose(emb[None], (h, w))
    assert patch[plain.as_int()[::-1]]
    checked = checked_proposal(bank, None, emb[None], (h, w), candidates=4)
    col, row = checked.click.as_int()
    assert body[row, col] and abs(col - 25 * 16) <= 16 and abs(row - 19 * 16) <= 16
    # the proposal carries the body's mask (token 2) as the first prediction of the object
    assert checked.token == 2 and checked.low_res[0, 0] == 2.0
    first = checked.prediction()
    assert np.array_equal(first.mask, body) and first.low_res_logits is checked.low_res
    # an object annotated since the offer is cut out; one covering the click cancels the mask
    left = body & (np.arange(w) < col - 20)[None, :]
    assert np.array_equal(checked.prediction(left).mask, body & ~left)
    assert checked.prediction(body) is None
    # one candidate: the centre of the plain proposal's mask; no finished object yet: the plain
    # proposal, with no mask
    assert patch[checked_proposal(bank, None, emb[None], (h, w), candidates=1).click.as_int()[::-1]]
    no_objects = ClickBank(smooth=1, features=list(bank.features))
    unchecked = checked_proposal(no_objects, None, emb[None], (h, w))
    assert unchecked.click == plain and unchecked.prediction() is None
    # annotated objects are never proposed: with the body ignored, its masks do not count
    assert not body[checked_proposal(bank, None, emb[None], (h, w), ignore_mask=body).click.as_int()[::-1]]


def test_checked_proposal_on_real_video_frames_lands_on_the_swan(sam_predictor, data_root):
    """Real model, DAVIS blackswan: banks from frame 0's swan; the checked proposal on a later
    frame is inside the swan and at least as deep inside it as the plain one."""
    from clickmask.geometry.masks import distance_to_boundary, next_click
    from clickmask.evaluation.runner import load_sample
    from clickmask.evaluation.sequential.sequences import SequenceOptions, build_sequences

    seqs = build_sequences(data_root, "DAVIS2016_dev", SequenceOptions(frame_step=10, min_instances=3))
    swan = next(s for s in seqs if s.category == "blackswan")
    image, gt, _ = load_sample(swan.samples[0])
    sam_predictor.set_image(image)
    bank = ClickBank()
    bank.add_click(sam_predictor.embedding, next_click(gt, np.zeros_like(gt), None, []), gt.shape)
    bank.add_object(sam_predictor.embedding, gt, gt.shape)
    image, gt, _ = load_sample(swan.samples[2])
    sam_predictor.set_image(image)
    plain = bank.propose(sam_predictor.embedding, gt.shape)
    checked = checked_proposal(bank, sam_predictor, sam_predictor.embedding, gt.shape)
    depth = distance_to_boundary(gt)
    x, y = checked.click.as_int()
    assert gt[y, x]
    assert depth[y, x] >= depth[plain.as_int()[::-1]] - 1e-6
    # the mask the check recognised is the swan
    from clickmask.geometry.masks import iou

    assert iou(gt, checked.prediction().mask, None) > 0.8


def test_accepted_prediction_is_polished_and_keeps_annotated_objects_out():
    """The check's mask gets the predictor's image-space steps; what they add on annotated objects is cut again."""
    from clickmask.engine.predictor import Prediction
    from clickmask.learning.proposal import CheckedProposal, accepted_prediction

    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:30] = True
    checked = CheckedProposal(Click(20, 20, True), np.where(mask, 3.0, -3.0).astype(np.float32),
                              np.zeros((256, 256), np.float32), 2, 0.9)
    annotated = np.zeros_like(mask)
    annotated[:, 28:] = True

    class Polishing:
        def __init__(self):
            self.calls = []

        def polish(self, pred, clicks):
            self.calls.append(clicks)
            grown = np.zeros_like(mask)
            grown[8:32, 8:36] = True  # snapping grows the mask, also onto the annotated strip
            return Prediction(np.where(grown, 1.0, -1.0).astype(np.float32), pred.low_res_logits, pred.score,
                              info=pred.info)

    predictor = Polishing()
    first = accepted_prediction(checked, predictor, annotated)
    assert predictor.calls == [[checked.click]]
    expected = np.zeros_like(mask)
    expected[8:32, 8:28] = True
    assert np.array_equal(first.mask, expected) and first.info["proposal_token"] == 2
    # a backend without image-space steps (its polish returns the prediction): the check's mask as it is
    class Plain:
        def polish(self, pred, clicks):
            return pred

    assert np.array_equal(accepted_prediction(checked, Plain(), None).mask, mask)
