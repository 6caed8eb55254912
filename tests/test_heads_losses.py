"Heads (hier_repro.heads) and losses (hier_repro.losses): shapes, gradients, options, closed forms, pseudo-labels, fit/resume."
import math, types, warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from hier_repro.hierarchy import Hierarchy
from hier_repro.heads import (PROXYDR_GRID, AVGK_METHODS, make_proxydr_model, make_avgk_model, make_dmlcrc_model, ProxyHead,
                              initial_scale, scale_condition, scale_step_loss, ema_update, proxy_logits, RoleLabelMatrix)
from hier_repro.losses import (CrossEntropy, CorrLoss, make_proxydr_loss, two_head_pseudo_labels, TwoHeadLoss, ANLoss, WANLoss,
                               EPRLoss, ROLELoss, make_avgk_loss, crc_coefficients, procrc_coefficients, collaborative_residuals,
                               crc_predict, CollaborativeLoss, dmlcrc_loss)
from hier_repro.models import TensorSplit

TREE = Hierarchy([['A', 'a1'], ['A', 'a2'], ['B', 'b1'], ['B', 'b2']], name='toy')


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for small tensors


def _data(n=24, d=16, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(C, d, generator=g)
    y = torch.arange(n) % C
    return centres[y] + torch.randn(n, d, generator=g), y


# ---------------------------------------------------------------- ProxyDR heads
@pytest.mark.parametrize('model,option', PROXYDR_GRID)
def test_grid_outputs_gradients_and_hooks(model, option):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)   # NormFace dynamic scale: no exact start for 4 classes
        net = make_proxydr_model(model, option, hierarchy=TREE, in_dim=16, emb_dim=8, mds_steps=50, mds_lr=1e-2, seed=0)
    x, y = _data()
    out = net(x)
    assert {'emb', 'scores', 'logits'} <= set(out) and out['scores'].shape == (24, 4) and out['emb'].shape == (24, 8)
    if model != 'softmax': assert out['cos'].shape == (24, 4)
    make_proxydr_loss(model)(out, y, None).backward()
    learned = model == 'softmax' or option in ('standard', 'dynamic')
    assert (net.head.W.grad is not None) == learned
    assert net.embed.neck.weight.grad is not None
    if 'dynamic' in option: assert net.head.log_s.grad is None          # the loss never moves the scale
    W0 = net.head.W.detach().clone()
    with torch.no_grad(): net.after_step(out, y)
    moved = not torch.equal(W0, net.head.W.detach())
    assert moved == ('ema' in option)                                   # only EMA moves proxies in after_step
    assert net.class_representatives().shape == (4, 8)


def test_initial_scale_values():
    assert abs(initial_scale('proxydr', 100) - 7.90) < 0.005
    assert abs(initial_scale('normface', 100) - 5.79) < 0.005
    with pytest.warns(UserWarning, match='no root'): initial_scale('normface', 10)


@pytest.mark.parametrize('kind,B', [('proxydr', 50.0), ('normface', 2000.0)])
def test_condition_puts_inflection_at_median(kind, B):
    from scipy.optimize import fsolve
    th = torch.tensor(0.5, dtype=torch.float64)
    s = float(fsolve(lambda v: scale_condition(kind, torch.as_tensor(v, dtype=torch.float64), B, th).numpy(), 10.)[0])
    x = torch.linspace(0.05, 1.4, 40001, dtype=torch.float64)
    p = x ** -s / (x ** -s + B) if kind == 'proxydr' else torch.exp(s * torch.cos(x)) / (torch.exp(s * torch.cos(x)) + B)
    d2 = torch.diff(p, 2)
    x_infl = float(x[1:-1][torch.nonzero(torch.diff(torch.sign(d2)) != 0)[0, 0]])
    target = float((2 - 2 * torch.cos(th)).sqrt()) if kind == 'proxydr' else float(th)
    assert abs(x_infl - target) < 1e-3


def test_proxydr_probabilities_are_inverse_distance_powers():
    g = torch.Generator().manual_seed(1)
    cos = F.normalize(torch.randn(5, 6, generator=g), dim=1) @ F.normalize(torch.randn(4, 6, generator=g), dim=1).T
    d = (2 - 2 * cos).sqrt()
    torch.testing.assert_close(proxy_logits(cos, 9.0, 'proxydr').softmax(1), d ** -9 / (d ** -9).sum(1, keepdim=True))


def test_ema_formula():
    W = F.normalize(torch.randn(3, 4), dim=1); W0 = W.clone(); seen = torch.tensor([False, True, True])
    f = torch.randn(4, 4); y = torch.tensor([0, 1, 1, 1])
    ema_update(W, seen, f, y, alpha=0.01)
    m = lambda c: F.normalize(F.normalize(f[y == c], dim=1).mean(0), dim=0)
    torch.testing.assert_close(W[0], m(0))
    torch.testing.assert_close(W[1], F.normalize(0.01 * m(1) + 0.99 * W0[1], dim=0))
    assert torch.equal(W[2], W0[2]) and seen.all()


def test_dynamic_scale_uses_its_own_adam():
    from hier_repro.training import trainable_parameters, inner_optimizers
    net = make_proxydr_model('proxydr', 'dynamic', n_classes=4, in_dim=16, emb_dim=8, seed=0)
    assert all(p is not net.head.log_s for p in trainable_parameters(net))
    opt = list(inner_optimizers(net).values())[0]
    assert opt.param_groups[0]['lr'] == 1e-4 and opt.param_groups[0]['params'][0] is net.head.log_s
    x, y = _data()
    out = net(x); c0 = float(scale_step_loss('proxydr', net.head.log_s, out['cos'], y).detach()); s0 = net.head.s
    with torch.no_grad(): net.after_step(out, y)
    assert net.head.s != s0 and float(scale_step_loss('proxydr', net.head.log_s, out['cos'], y).detach()) < c0
    assert abs(math.log(net.head.s) - math.log(s0)) == pytest.approx(1e-4, rel=1e-3)   # first Adam step = lr


def test_mds_and_corr_configuration():
    net = make_proxydr_model('corr', 'mds', hierarchy=TREE, in_dim=16, emb_dim=8, mds_steps=300, mds_lr=1e-2, seed=0)
    assert net.head.kind == 'proxydr' and net.head.fixed and not list(net.head.parameters())
    D = torch.cdist(net.head.W, net.head.W)
    assert D[0, 1] < D[0, 2]                                      # siblings closer than cousins
    with pytest.raises(ValueError, match='hierarchy='): make_proxydr_model('normface', 'mds', n_classes=4, in_dim=16)
    assert isinstance(make_proxydr_loss('corr'), CorrLoss) and isinstance(make_proxydr_loss('normface'), CrossEntropy)


# ---------------------------------------------------------------- Average-K
@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 12), L=st.integers(2, 9), K=st.integers(1, 4), seed=st.integers(0, 10_000), plain=st.booleans())
def test_pseudo_label_counts(b, L, K, seed, plain):
    K = min(K, L)
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(b, L, generator=g).softmax(1); y = torch.randint(0, L, (b,), generator=g)
    Z = two_head_pseudo_labels(p, y, K, 'plain' if plain else 'forced')
    assert int(Z.sum()) == K * b
    if not plain: assert Z[torch.arange(b), y].all()


def test_two_head_loss_terms_and_warmup():
    net = make_avgk_model('two_head', 5, in_dim=16, seed=0)
    x, y = _data(C=5)
    out = net(x)
    loss = make_avgk_loss('two_head', K=2, warmup_epochs=1)
    torch.testing.assert_close(loss(out, y, None), F.cross_entropy(out['logits'], y))
    loss.set_epoch(1)
    Z = two_head_pseudo_labels(out['p'], y, 2)
    torch.testing.assert_close(loss(out, y, None), F.cross_entropy(out['logits'], y) + F.binary_cross_entropy_with_logits(out['q_logits'], Z.float()))
    loss(out, y, None).backward()
    assert net.head.multilabel.weight.grad is not None and net.head.softmax.weight.grad is not None


def test_single_positive_losses():
    g = torch.Generator().manual_seed(0)
    ql = torch.randn(3, 4, generator=g); y = torch.tensor([1, 0, 3]); q = torch.sigmoid(ql); nl = lambda v: -torch.log(v + 1e-5)
    pos = F.one_hot(y, 4).bool()
    an = torch.where(pos, nl(q), nl(1 - q)).mean()
    wan = torch.where(pos, nl(q), nl(1 - q) / 3).mean()
    epr = torch.where(pos, nl(q), torch.zeros_like(q)).mean() + (q.sum(1).mean() - 2) ** 2 / 16
    for L_, ref in [(ANLoss(), an), (WANLoss(), wan), (EPRLoss(2), epr)]: torch.testing.assert_close(L_({'q_logits': ql}, y), ref)


def test_role_label_matrix_and_loss():
    ytr = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    net = make_avgk_model('role', 5, in_dim=16, train_labels=ytr, seed=0)
    lm = net.head.label_matrix
    assert lm.table.weight.shape == (7, 5) and any(p is lm.table.weight for p in net.parameters())
    torch.testing.assert_close(lm.estimates()[torch.arange(7), ytr], torch.full((7,), 0.995))
    loss = make_avgk_loss('role', net, K=2)
    idx = torch.tensor([6, 2]); x = torch.randn(2, 16)
    l = loss(net(x), ytr[idx], idx); l.backward()
    g = lm.table.weight.grad
    assert g[idx].abs().sum() > 0 and g[[0, 1, 3, 4, 5]].abs().sum() == 0
    assert any('label_matrix' in k for k in net.state_dict())   # saved in checkpoints with the model
    with pytest.raises(ValueError, match='model='): make_avgk_loss('role', None)


# ---------------------------------------------------------------- CRC / ProCRC closed forms
def _toy_dict(n=11, d=6, N=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    z = F.normalize(torch.randn(N, d, generator=g, dtype=torch.float64), dim=1)
    return z, X, torch.arange(n) % C


def _lstsq(blocks, rhs_top, n):
    A = torch.cat(blocks); b = torch.cat([rhs_top, torch.zeros(len(A) - len(rhs_top), dtype=A.dtype)])
    return torch.linalg.lstsq(A, b[:, None]).solution[:, 0]


@pytest.mark.parametrize('n', [4, 11])   # n < d (dictionary space) and n > d (Woodbury)
def test_crc_matches_lstsq(n):
    z, X, lab = _toy_dict(n=n); lam = 0.05
    ref = torch.stack([_lstsq([X.T, lam ** 0.5 * torch.eye(n, dtype=X.dtype)], zi, n) for zi in z])
    for wb in (None, False, True): torch.testing.assert_close(crc_coefficients(z, X, lam, woodbury=wb), ref)


def test_procrc_matches_lstsq():
    z, X, lab = _toy_dict(); lam, gam, C = 0.05, 0.2, 3
    blocks = [X.T] + [gam ** 0.5 * (X * (lab != c)[:, None]).T for c in range(C)] + [lam ** 0.5 * torch.eye(len(X), dtype=X.dtype)]
    ref = torch.stack([_lstsq(blocks, zi, len(X)) for zi in z])
    torch.testing.assert_close(procrc_coefficients(z, X, lab, C, lam, gam), ref)


@pytest.mark.parametrize('method', ['crc', 'procrc'])
@pytest.mark.parametrize('woodbury', [False, True])
def test_exclusion_equals_dictionary_without_the_atom(method, woodbury):
    z, X, lab = _toy_dict(); lam, gam, C = 0.05, 0.2, 3
    ex = torch.tensor([3, -1, 0, 10, 7])
    if method == 'crc': a = crc_coefficients(z, X, lam, exclude=ex, woodbury=woodbury)
    else: a = procrc_coefficients(z, X, lab, C, lam, gam, exclude=ex)
    r = collaborative_residuals(z, X, lab, C, lam, method, gam, exclude=ex)
    for i, e in enumerate(ex.tolist()):
        keep = torch.tensor([k for k in range(len(X)) if k != e])
        sub = crc_coefficients(z[i:i + 1], X[keep], lam) if method == 'crc' else procrc_coefficients(z[i:i + 1], X[keep], lab[keep], C, lam, gam)
        torch.testing.assert_close(a[i, keep], sub[0])
        if e >= 0: assert a[i, e] == 0
        torch.testing.assert_close(r[i], collaborative_residuals(z[i:i + 1], X[keep], lab[keep], C, lam, method, gam)[0])


def test_residuals_by_class_and_gradients():
    z, X, lab = _toy_dict(n=7, N=3); lam, C = 0.05, 3
    a = crc_coefficients(z, X, lam)
    r = collaborative_residuals(z, X, lab, C, lam)
    ref = torch.stack([((z - a[:, lab == c] @ X[lab == c]) ** 2).sum(1) for c in range(C)], 1)
    torch.testing.assert_close(r, ref)
    zz, XX = z.clone().requires_grad_(), X.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda u, v: collaborative_residuals(u, v, lab, C, lam), (zz, XX))
    assert torch.autograd.gradcheck(lambda u, v: collaborative_residuals(u, v, lab, C, lam, 'procrc', 0.1, exclude=torch.tensor([0, -1, 2])), (zz, XX))


def test_closed_forms_under_autocast():
    z, X, lab = _toy_dict()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        r = collaborative_residuals(z.float(), (X.float() @ torch.eye(6)), lab, 3)   # matmul runs in bf16, the solve in fp32
    assert r.dtype == torch.float32 and torch.isfinite(r).all()


def test_crc_classifies_blobs():
    Xa, ya = _data(n=90, d=10, C=3, seed=2)   # train on the first 60, test on the last 30
    for m in ('crc', 'procrc'):
        acc = (crc_predict(Xa[60:], Xa[:60], ya[:60], 3, method=m).argmax(1) == ya[60:]).float().mean()
        assert acc > 0.9


# ---------------------------------------------------------------- DML-CRC
def test_dmlcrc_loss_excludes_own_atom_with_full_dictionary():
    x, y = _data(n=12, d=8, C=3)
    net = make_dmlcrc_model(3, in_dim=8, dictionary='full', seed=0)
    net.on_epoch_start(0, TensorSplit(x, y), 'cpu')
    idx = torch.tensor([4, 0, 7])
    out = net(x[idx])
    loss = CollaborativeLoss(3, lam=0.01)
    r = loss.residuals(out, y[idx], idx)
    for i, j in enumerate(idx.tolist()):
        keep = torch.tensor([k for k in range(12) if k != j])
        ref = collaborative_residuals(out['z'][i:i + 1], out['dict_z'][keep], y[keep], 3, 0.01)[0]
        torch.testing.assert_close(r[i], ref)
    r_in = loss.residuals(out, y[idx], None)     # without idx the query's own feature is an atom: own residual ~ 0
    own_in, own_out = r_in[torch.arange(3), y[idx]], r[torch.arange(3), y[idx]]
    assert (own_in < 0.02).all() and (own_out > 3 * own_in).all()


def test_dmlcrc_identity_metric_and_memory():
    net = make_dmlcrc_model(3, in_dim=8, m=2, learn_metric=False, seed=0)
    x, y = _data(n=6, d=8, C=3)
    out = net(x)
    torch.testing.assert_close(out['z'], F.normalize(x, dim=1))
    dmlcrc_loss(3)(out, y, torch.arange(6)).backward()
    assert net.head.metric.weight.grad is None
    with torch.no_grad(): net.after_step(out, y)                 # idx recorded by the loss in out['idx']
    assert sorted(net.head.mem_idx.tolist()) == list(range(6))


# ---------------------------------------------------------------- with fit: training and exact resume
def _fit_pair(make_model, make_loss, tmp_path, data, epochs=3):
    from hier_repro.training import fit
    a, b = make_model(), make_model()
    fit(a, make_loss(a), data, epochs=epochs, lr=1e-2, batch_size=8, run_dir=tmp_path / 'a', log='none', device='cpu')
    fit(b, make_loss(b), data, epochs=epochs, lr=1e-2, batch_size=8, run_dir=tmp_path / 'b', stop_after=1, log='none', device='cpu')
    b2 = make_model()
    res = fit(b2, make_loss(b2), data, epochs=epochs, lr=1e-2, batch_size=8, run_dir=tmp_path / 'b', log='none', device='cpu')
    sa, sb = a.state_dict(), b2.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa: assert torch.equal(sa[k], sb[k]), k
    return a, res


@pytest.mark.parametrize('cfg', ['proxydr-ema_dynamic', 'normface-dynamic', 'dmlcrc-memory', 'dmlcrc-full', 'role', 'two_head'])
def test_fit_trains_and_resumes_exactly(cfg, tmp_path):
    x, y = _data(n=40, d=16, C=4, seed=5)
    data = types.SimpleNamespace(train=TensorSplit(x[:32], y[:32]), val=TensorSplit(x[32:], y[32:]))
    if cfg.startswith(('proxydr', 'normface')):
        m, o = cfg.split('-')
        mk = lambda: make_proxydr_model(m, o, n_classes=4, in_dim=16, emb_dim=8, seed=0)
        ml = lambda net: make_proxydr_loss(m)
    elif cfg.startswith('dmlcrc'):
        mk = lambda: make_dmlcrc_model(4, in_dim=16, dictionary=cfg.split('-')[1], m=3, seed=0)
        ml = lambda net: dmlcrc_loss(4)
    else:
        mk = lambda: make_avgk_model(cfg, 4, in_dim=16, train_labels=data.train.y, seed=0)
        ml = lambda net: make_avgk_loss(cfg, net, K=2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model, res = _fit_pair(mk, ml, tmp_path, data)
    assert res.finished and res.best_val_acc > 0.5
