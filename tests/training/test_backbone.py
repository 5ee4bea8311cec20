"""EfficientNet-Lite0 architecture and its ImageNet weights."""

from __future__ import annotations

import pytest
import torch

from qc.imaging import Preprocessing, preprocess
from training.backbone import STAGE_CHANNELS, STAGE_STRIDES, EfficientNetLite0, load_pretrained

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained()


def test_real_photo_is_classified_sensibly(pretrained):
    skimage_data = pytest.importorskip("skimage.data")
    x = torch.from_numpy(preprocess(skimage_data.chelsea(), Preprocessing((224, 224))))[None]
    with torch.no_grad():
        probs = pretrained(x).softmax(1)[0]
    top = int(probs.argmax())
    assert top in CAT_CLASSES, f"chelsea (a cat) classified as ImageNet class {top}"
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5
    coffee = torch.from_numpy(preprocess(skimage_data.coffee(), Preprocessing((224, 224))))[None]
    with torch.no_grad():
        assert int(pretrained(coffee).argmax()) in (967, 968, 504)  # espresso, cup, coffee mug


def test_untrained_model_does_not_recognise_the_cat():
    skimage_data = pytest.importorskip("skimage.data")
    torch.manual_seed(0)
    x = torch.from_numpy(preprocess(skimage_data.chelsea(), Preprocessing((224, 224))))[None]
    with torch.no_grad():
        probs = EfficientNetLite0().eval()(x).softmax(1)[0]
    assert float(probs[list(CAT_CLASSES)].sum()) < 0.5


def test_feature_taps_have_documented_shapes(pretrained):
    x = torch.zeros(1, 3, 64, 96)
    last, taps = pretrained.features(x, stages=tuple(range(7)))
    assert last.shape == (1, 1280, 2, 3)
    for i, t in taps.items():
        assert t.shape == (1, STAGE_CHANNELS[i], 64 // STAGE_STRIDES[i], 96 // STAGE_STRIDES[i])
    shallow, taps = pretrained.features(x, stages=(1, 2), head=False)
    assert shallow.shape[1] == STAGE_CHANNELS[2] and set(taps) == {1, 2}
