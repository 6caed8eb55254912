"Backbones, the embedding neck, frozen features and their disk cache (hier_repro.models)."
import os, types, urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from hier_repro import models
from hier_repro.models import (create_backbone, list_backbones, EmbeddingNet, FeatureInput, TensorSplit, extract_features,
                               cached_features, feature_cache_path, PretrainedWeightsError, EfficientNetLite0,
                               efficientnet_lite0_weights_path, IMAGENET_BIRDS, Conv2dSame)


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for small tensors


@pytest.fixture(scope='module')
def lite0():
    return create_backbone('efficientnet_lite0', pretrained=True).eval()


def test_registry_names_and_unknown():
    assert set(list_backbones()) >= {'smallcnn', 'resnet18', 'resnet50', 'vgg19', 'efficientnet_lite0'}
    with pytest.raises(KeyError, match='known: efficientnet_lite0'): create_backbone('densenet')


@pytest.mark.parametrize('name,size,dim', [('smallcnn', 28, 128), ('resnet18', 32, 512), ('efficientnet_lite0', 32, 1280)])
@pytest.mark.parametrize('ch', [1, 3])
def test_backbone_shapes(name, size, dim, ch):
    b = create_backbone(name, in_chans=ch).eval()
    assert b.out_dim == dim
    with torch.no_grad(): assert b(torch.randn(2, ch, size, size)).shape == (2, dim)


def test_efficientnet_lite0_strict_load_and_logits(lite0):
    sd = torch.load(efficientnet_lite0_weights_path(), map_location='cpu', weights_only=True)
    net = EfficientNetLite0()
    res = net.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    assert set(net.state_dict()) == set(sd)
    for k, v in lite0.state_dict().items(): assert torch.equal(v, sd[k]), k   # the factory loaded the file
    with torch.no_grad(): logits = lite0.imagenet_logits(torch.randn(2, 3, 96, 96))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_efficientnet_lite0_on_real_birds(lite0, shared_data):
    from PIL import Image
    cub = shared_data / 'cub' / 'CUB_200_2011_subset100'
    files = [l.split()[1] for l in (cub / 'images.txt').read_text().splitlines()][::300]
    x = torch.stack([torch.from_numpy(np.array(Image.open(cub / 'images' / f).convert('RGB'))).permute(2, 0, 1) for f in files]).float() / 255
    with torch.no_grad(): top = lite0.imagenet_logits((x - 127 / 255) / (128 / 255)).argmax(1)
    assert np.mean([int(t) in IMAGENET_BIRDS for t in top]) > 0.8


def test_tf_same_padding_is_asymmetric():
    c = Conv2dSame(1, 1, 3, stride=2); c.weight.data.fill_(1.)
    with torch.no_grad(): out = c(torch.ones(1, 1, 4, 4))
    assert out[0, 0].tolist() == [[9., 6.], [6., 4.]]   # pad 0 top/left, 1 bottom/right


def test_fresh_first_conv_and_grey_keep_other_weights(lite0):
    for kw in [dict(in_chans=1, fresh_first_conv=True), dict(fresh_first_conv=True)]:
        b = create_backbone('efficientnet_lite0', pretrained=True, **kw)
        assert b._conv_stem.weight.shape[1] == kw.get('in_chans', 3)
        assert not torch.equal(b._conv_stem.weight[:, :1], lite0._conv_stem.weight[:, :1])
        assert torch.equal(b._blocks[5]._project_conv.weight, lite0._blocks[5]._project_conv.weight)


def test_grey_pretrained_keeps_imagenet_stem(lite0):
    "By default a pretrained backbone on 1-channel images keeps its ImageNet stem and sees grey repeated on RGB."
    b = create_backbone('efficientnet_lite0', pretrained=True, in_chans=1, input_mean=(0.3,), input_std=(0.2,)).eval()
    assert torch.equal(b.net._conv_stem.weight, lite0._conv_stem.weight)
    g = torch.rand(2, 1, 32, 32)
    rgb = (g.expand(-1, 3, -1, -1) - torch.tensor(lite0.input_mean).view(1, 3, 1, 1)) / torch.tensor(lite0.input_std).view(1, 3, 1, 1)
    with torch.no_grad(): assert torch.allclose(b((g - 0.3) / 0.2), lite0.eval()(rgb), atol=1e-4)


def test_renormalize_to_pretrained_normalisation(lite0):
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)
    b = create_backbone('efficientnet_lite0', pretrained=True, input_mean=mean, input_std=std).eval()
    x01 = torch.rand(2, 3, 32, 32)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad(): torch.testing.assert_close(b((x01 - m) / s), lite0((x01 - 127 / 255) / (128 / 255)), atol=1e-4, rtol=1e-4)
    assert b.out_dim == 1280


def test_torchvision_pretrained_offline_error(monkeypatch):
    import torchvision.models._api as tv_api
    def no_net(*a, **k): raise urllib.error.URLError('Name or service not known')
    monkeypatch.setattr(tv_api, 'load_state_dict_from_url', no_net)   # offline even where the network works
    with pytest.raises(PretrainedWeightsError, match='pretrained=False'): create_backbone('resnet18', pretrained=True)
    with pytest.raises(PretrainedWeightsError, match='no pretrained weights'): create_backbone('smallcnn', pretrained=True)


def test_embedding_net_gradients():
    en = EmbeddingNet(create_backbone('smallcnn', in_chans=1), 16)
    f = en(torch.randn(3, 1, 28, 28)); assert f.shape == (3, 16)
    f.pow(2).sum().backward()
    assert all(p.grad is not None for p in en.parameters())
    assert EmbeddingNet(FeatureInput(7), None)(torch.ones(2, 7)).shape == (2, 7)


class Shuffled(TensorSplit):
    "A split that yields its rows in a fixed random order (as a DataLoader-backed split might)."
    def batches(self, batch_size, shuffle=False, **kw):
        return super().batches(batch_size, shuffle=True, generator=torch.Generator().manual_seed(1), **kw)


def test_extract_features_places_rows_by_idx():
    x = torch.randn(9, 4)
    lin = torch.nn.Linear(4, 3); lin.out_dim = 3
    f = extract_features(lin, Shuffled(x, torch.zeros(9)), batch_size=4)
    with torch.no_grad(): torch.testing.assert_close(f, lin(x))


def _toy(n=8, seed=0, **desc):
    g = torch.Generator().manual_seed(seed)
    return types.SimpleNamespace(name='toy', classes=['a', 'b'], hierarchy=None, image_shape=(1, 28, 28), mean=None, std=None,
                                 description={'source': 'random', **desc},
                                 train=TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 2),
                                 val=TensorSplit(torch.randn(4, 1, 28, 28, generator=g), torch.arange(4) % 2), test=None)


def test_feature_cache_hit_miss(tmp_path, monkeypatch):
    calls = []
    real = models.extract_features
    monkeypatch.setattr(models, 'extract_features', lambda *a, **k: calls.append(1) or real(*a, **k))
    stores = lambda: len(list(tmp_path.glob('*.pt')))
    a = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    assert len(calls) == 2 and a.train.x.shape == (8, 128) and a.test is None and a.n_classes == 2
    b = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)          # hit
    assert len(calls) == 2 and torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path, seed=1)       # other random weights: miss
    cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path, image_size=32) # other size: miss
    assert len(calls) == 6 and stores() == 3
    cached_features(_toy(split='v2'), 'smallcnn', pretrained=False, cache_dir=tmp_path)      # other description, same images: hit
    cached_features(_toy(storage='decoded in 3.2 s'), 'smallcnn', pretrained=False, cache_dir=tmp_path)  # how it was loaded: hit
    other_labels = _toy(); other_labels.train.y = 1 - other_labels.train.y
    c = cached_features(other_labels, 'smallcnn', pretrained=False, cache_dir=tmp_path)      # other labels (label noise): hit
    assert len(calls) == 6 and torch.equal(c.train.x, a.train.x) and torch.equal(c.train.y, other_labels.train.y)
    other_images = _toy(seed=5)
    d = cached_features(other_images, 'smallcnn', pretrained=False, cache_dir=tmp_path)      # other images: extracted, appended
    assert len(calls) == 8 and stores() == 3 and not torch.equal(d.train.x, a.train.x)
    normalised = _toy(); normalised.train.mean, normalised.train.std = torch.tensor([0.5]), torch.tensor([0.2])
    cached_features(normalised, 'smallcnn', pretrained=False, cache_dir=tmp_path)            # same pixels, other normalisation: train missed
    assert len(calls) == 9
    assert 'random-s1' in feature_cache_path(_toy(), 'smallcnn', 'random-s1', (28, 28), tmp_path).name


def test_feature_cache_one_extraction_for_concurrent_processes(tmp_path):
    "Two processes asking for the same features at once: one extracts, the other waits and reads (a file lock)."
    import subprocess, sys, textwrap
    code = textwrap.dedent(f"""
        import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_models import _toy
        from hier_repro.models import cached_features
        fd = cached_features(_toy(n=64), 'smallcnn', pretrained=False, cache_dir={str(tmp_path)!r})
        print(fd.description['features']['extracted_now'])""")
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(int(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs)
    assert outs == [0, 68] and len(list(tmp_path.glob('*.pt'))) == 1


def test_feature_dataset_keeps_split_extras(tmp_path):
    toy = _toy(); toy.train.y_clean = toy.train.y.clone()
    fd = cached_features(toy, 'smallcnn', pretrained=False, cache_dir=tmp_path)
    assert torch.equal(fd.train.y_clean, toy.train.y) and fd.val.y_clean is None


def test_feature_cache_loads_weights_only(tmp_path, monkeypatch):
    cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    seen = []
    real = torch.load
    monkeypatch.setattr(torch, 'load', lambda *a, **k: seen.append(k.get('weights_only')) or real(*a, **k))
    cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    assert seen == [True]


def test_feature_cache_write_is_atomic(tmp_path, monkeypatch):
    real = torch.save
    def crash(obj, f, *a, **k):
        real(obj, f, *a, **k)
        f.flush(); f.truncate(100)                    # half-written ...
        raise KeyboardInterrupt                       # ... then the process is interrupted
    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt): cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    assert [f.suffix for f in tmp_path.iterdir()] == ['.lock']   # neither a truncated cache file nor a temporary left behind
    monkeypatch.setattr(torch, 'save', real)
    fd = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    assert fd.train.x.shape == (8, 128) and len(list(tmp_path.glob('*.pt'))) == 1


def test_random_backbone_seeded(tmp_path):
    a = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path / 'a', seed=3)
    b = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path / 'b', seed=3)
    c = cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path / 'c', seed=4)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
