"""Metrics: cross-checks against independent implementations (torchmetrics, scipy, pytorch-metric-learning, brute-force loops
written here after the official code), invariances (hypothesis), bad inputs, and the no-n-x-n guarantee."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from scipy import stats
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform

import hier_repro.metrics as M
from hier_repro.hierarchy import Hierarchy, load_hierarchy, tree_transform
from hier_repro.metrics import (MetricInputError, topk_accuracy, average_k_threshold, average_k_accuracy, average_k_set_sizes,
                                ahc, ahd_at_k, hp_at_k, level_accuracy, classwise_spearman, elementwise_spearman, robinson_foulds,
                                proxy_retrieval, hs_at_r, ahs, retrieval_scores, compare_runs, permutation_test, evaluate_hierarchy,
                                class_means, chord_distances)

C100 = load_hierarchy('cifar100')
D100 = C100.distance_matrix()


def _rand(n=400, C=100, d=16, seed=0):
    g = np.random.default_rng(seed)
    y = np.r_[np.arange(C), g.integers(0, C, n - C)]          # every class present
    return g.normal(size=(n, C)), y, g.normal(size=(n, d))


# ---------------------------------------------------------------- brute-force references (loops, after eval_.py)
def bf_ahd(label, score, D, k):
    preds = np.argsort(-score, axis=-1)[:, :k]
    return sum(D[preds[i, j], label[i]] for i in range(len(label)) for j in range(k)) / (k * len(label))


def bf_hp(label, score, D, k):
    preds = np.argsort(-score, axis=-1)[:, :k]
    hdist = np.sort(D[label, :], axis=-1)[:, 1 + k]
    tot = 0
    for j in range(len(label)):
        hcorrect = np.where(D[label[j], :] <= hdist[j])[0]
        tot += len(np.intersect1d(preds[j], hcorrect))
    return tot / (k * len(label))


def bf_hsr(feats, labels, D, k, beta=1.0):
    "The official top_k_HSR, with the n x n matrices it builds (the query is the first of its own sorted row)."
    sim_tree = 1 - tree_transform(D.astype(float), beta) ** 2 / 2
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    cos = f @ f.T
    np.fill_diagonal(cos, np.inf)                       # the query first, whatever the float error
    knn = np.argsort(-cos, axis=-1, kind='stable')[:, 1:k + 1]
    sim_cls = sim_tree[labels][:, labels].copy()
    np.fill_diagonal(sim_cls, np.inf)
    best = np.argsort(-sim_cls, axis=-1, kind='stable')[:, 1:k + 1]
    got = np.zeros((len(f), k)); top = np.zeros((len(f), k))
    for i in range(k):
        got[:, i] = sim_tree[labels, labels[knn[:, i]]]
        top[:, i] = sim_tree[labels, labels[best[:, i]]]
    return np.nanmean(np.cumsum(got, 1) / np.cumsum(top, 1), axis=0)


def bf_group_retrieval(W, groups):
    "The official get_acc_measures (each=True): each proxy queries the others, groups of one skipped."
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    dist = np.sqrt(np.clip(2 - 2 * W @ W.T, 0, None)); np.fill_diagonal(dist, -1)
    rank = np.argsort(dist, axis=1, kind='stable')[:, 1:]
    p1, rp, mp = [], [], []
    for g in np.unique(groups):
        idx = np.where(groups == g)[0]
        if len(idx) < 2: continue
        for j in idx:
            p1.append(rank[j, 0] in idx)
            rp.append(len(np.intersect1d(idx, rank[j, :len(idx) - 1])) / (len(idx) - 1))
            ps = [len(np.intersect1d(idx, rank[j, :k])) / k if rank[j, k - 1] in idx else 0 for k in range(1, len(idx))]
            mp.append(np.mean(ps))
    return np.mean(p1), np.mean(rp), np.mean(mp)


def bf_biopython_upgma(D):
    "Biopython's DistanceTreeConstructor.upgma, as loops over a lower-triangular list: returns the clusters (leaf sets) it makes."
    names = [frozenset([i]) for i in range(len(D))]
    dm = [[float(D[i][j]) for j in range(i + 1)] for i in range(len(D))]
    get = lambda i, j: dm[i][j] if i >= j else dm[j][i]
    clusters = []
    while len(dm) > 1:
        min_dist, min_i, min_j = dm[1][0], 0, 0
        for i in range(1, len(dm)):
            for j in range(0, i):
                if min_dist >= dm[i][j]: min_dist, min_i, min_j = dm[i][j], i, j
        new = names[min_i] | names[min_j]; clusters.append(new)
        row = [(get(min_i, k) + get(min_j, k)) / 2 for k in range(len(dm))]
        for k in range(len(dm)):
            if k != min_i and k != min_j:
                if min_j >= k: dm[min_j][k] = row[k]
                else: dm[k][min_j] = row[k]
        names[min_j] = new
        del names[min_i]
        for k in range(min_i + 1, len(dm)): del dm[k][min_i]
        del dm[min_i]
    return clusters


def unrooted_splits(clusters, C):
    full = frozenset(range(C)); out = set()
    for c in clusters:
        side = full - c if 0 in c else c
        if 2 <= len(side) <= C - 2: out.add(side)
    return out


def scipy_splits(D, method):
    root = to_tree(linkage(squareform(D, checks=False), method=method))
    clusters = []
    def walk(n):
        if n.is_leaf(): return frozenset([n.id])
        s = walk(n.left) | walk(n.right); clusters.append(s); return s
    walk(root)
    return unrooted_splits(clusters, len(D))


# ---------------------------------------------------------------- classification
@pytest.mark.parametrize('k', [1, 5])
def test_topk_matches_torchmetrics(k):
    from torchmetrics.classification import MulticlassAccuracy
    s, y, _ = _rand()
    st_, yt = torch.tensor(s, dtype=torch.float32), torch.tensor(y)
    assert topk_accuracy(s, y, k) == pytest.approx(MulticlassAccuracy(100, top_k=k, average='micro')(st_, yt).item(), abs=1e-6)
    assert topk_accuracy(s, y, k, macro=True) == pytest.approx(MulticlassAccuracy(100, top_k=k, average='macro')(st_, yt).item(), abs=1e-6)


def test_ties_go_to_the_lower_index():
    s = np.zeros((3, 5)); y = np.array([0, 2, 4])
    assert topk_accuracy(s, y, 1) == 1 / 3 and topk_accuracy(s, y, 3) == 2 / 3
    assert ahc(s, y, D100[:5, :5]) == np.mean(D100[0, [0, 2, 4]])          # argmax = class 0 for every row
    assert ahd_at_k(s, y, D100[:5, :5], k=2) == pytest.approx(np.mean([D100[[0, 1], c].mean() for c in y]))


def test_hierarchical_classification_matches_loops():
    s, y, _ = _rand()
    assert ahc(s, y, D100) == pytest.approx(np.mean(D100[np.argmax(s, 1), y]))
    for k in (1, 5, 10):
        assert ahd_at_k(s, y, D100, k) == pytest.approx(bf_ahd(y, s, D100, k))
        assert hp_at_k(s, y, D100, k) == pytest.approx(bf_hp(y, s, D100, k))
    for l in range(C100.depth + 1):
        a = C100.ancestors(l)[0]
        assert level_accuracy(s, y, C100, l) == pytest.approx(np.mean(a[np.argmax(s, 1)] == a[y]))


def test_average_k_matches_the_plantnet_recipe():
    g = np.random.default_rng(1)
    val = torch.softmax(torch.tensor(g.normal(size=(300, 20))) * 3, 1); test = torch.softmax(torch.tensor(g.normal(size=(200, 20))) * 3, 1)
    yv = torch.tensor(g.integers(0, 20, 200))
    for K in (1, 2, 5):
        srt = torch.sort(val.flatten(), descending=True).values
        lam = 0.5 * (srt[300 * K - 1] + srt[300 * K]).item()
        assert average_k_threshold(val, K) == pytest.approx(lam)
        assert average_k_set_sizes(val, lam).sum() == 300 * K                    # exactly n·K pairs above λ on validation
        hits = (test[torch.arange(200), yv] >= lam).numpy()
        assert average_k_accuracy(test, yv, lam) == pytest.approx(hits.mean())
        per = [hits[yv.numpy() == c].mean() for c in range(20) if (yv.numpy() == c).any()]
        assert average_k_accuracy(test, yv, lam, macro=True) == pytest.approx(np.mean(per))


# ---------------------------------------------------------------- hierarchy recovery
def test_spearman_matches_scipy():
    g = np.random.default_rng(2)
    De = chord_distances(g.normal(size=(100, 8)))
    rs = [stats.spearmanr(De[:, i], D100[:, i]) for i in range(100)]
    r, p = classwise_spearman(De, D100)
    assert r == pytest.approx(np.tanh(np.mean(np.arctanh([x[0] for x in rs]))))
    assert p == pytest.approx(stats.hmean([x[1] for x in rs]))
    iu = np.triu_indices(100, 1)
    assert elementwise_spearman(De, D100) == pytest.approx(tuple(stats.spearmanr(De[iu], D100[iu])))
    assert elementwise_spearman(torch.tensor(De), torch.tensor(D100)) == pytest.approx(elementwise_spearman(De, D100))


@pytest.mark.parametrize('method', ['average', 'weighted'])
def test_robinson_foulds_matches_scipy_trees(method):
    g = np.random.default_rng(3)
    A, B = chord_distances(g.normal(size=(30, 4))), chord_distances(g.normal(size=(30, 4)))
    s1, s2 = scipy_splits(A, method), scipy_splits(B, method)
    assert len(s1) == len(s2) == 30 - 3                                       # binary trees: C - 3 non-trivial splits
    assert robinson_foulds(A, B, method) == dict(rf=len(s1 ^ s2), max_rf=54, norm_rf=len(s1 ^ s2) / 54)
    assert robinson_foulds(A, A, method)['rf'] == 0


def test_biopython_port_including_ties():
    d = load_hierarchy('fashion_mnist').distance_matrix()              # 10 classes, many ties
    want = unrooted_splits(bf_biopython_upgma(d), 10)
    assert M._splits(d.astype(float), 'biopython') == {sum(1 << i for i in s) for s in want}
    g = np.random.default_rng(4)
    A = chord_distances(g.normal(size=(25, 4)))
    want = unrooted_splits(bf_biopython_upgma(A), 25)
    assert M._splits(A, 'biopython') == {sum(1 << i for i in s) for s in want} == M._splits(A, 'weighted')   # no ties: plain WPGMA


def test_proxy_retrieval_matches_official_loops():
    g = np.random.default_rng(5)
    W = g.normal(size=(100, 16))
    for l in (1, 2, 3):
        got = proxy_retrieval(W, C100.ancestors(l)[0])
        assert (got['p_at_1'], got['r_precision'], got['map_at_r']) == pytest.approx(bf_group_retrieval(W, C100.ancestors(l)[0]))


# ---------------------------------------------------------------- retrieval
def test_retrieval_matches_pytorch_metric_learning_and_torchmetrics():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN
    from pytorch_metric_learning.distances import CosineSimilarity
    from torchmetrics.retrieval import RetrievalRPrecision, RetrievalPrecision
    g = np.random.default_rng(6)
    y = g.integers(0, 8, 300); e = g.normal(size=(300, 8)) + 0.7 * g.normal(size=(8, 8))[y]
    got = retrieval_scores(e, y)
    calc = AccuracyCalculator(include=('precision_at_1', 'r_precision', 'mean_average_precision_at_r'), k='max_bin_count',
                              knn_func=CustomKNN(CosineSimilarity()))
    ref = calc.get_accuracy(torch.tensor(e, dtype=torch.float32), torch.tensor(y))
    assert got['p_at_1'] == pytest.approx(ref['precision_at_1'], abs=1e-6)
    assert got['r_precision'] == pytest.approx(ref['r_precision'], abs=1e-6)
    assert got['map_at_r'] == pytest.approx(ref['mean_average_precision_at_r'], abs=1e-6)
    f = F.normalize(torch.tensor(e, dtype=torch.float32), dim=1); S = f @ f.T
    off = ~torch.eye(300, dtype=torch.bool)
    preds, target = S[off], torch.tensor(y[:, None] == y[None, :])[off]
    idx = torch.arange(300)[:, None].expand(300, 300)[off]
    assert got['r_precision'] == pytest.approx(RetrievalRPrecision()(preds, target, indexes=idx).item(), abs=1e-6)
    assert got['p_at_1'] == pytest.approx(RetrievalPrecision(top_k=1)(preds, target, indexes=idx).item(), abs=1e-6)


def test_singletons_are_skipped_like_pml():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN
    from pytorch_metric_learning.distances import CosineSimilarity
    g = np.random.default_rng(7)
    y = np.r_[g.integers(0, 5, 100), [7, 8, 9]]; e = g.normal(size=(103, 6))
    ref = AccuracyCalculator(include=('precision_at_1', 'mean_average_precision_at_r'), k='max_bin_count',
                             knn_func=CustomKNN(CosineSimilarity())).get_accuracy(torch.tensor(e, dtype=torch.float32), torch.tensor(y))
    got = retrieval_scores(e, y)
    assert got['p_at_1'] == pytest.approx(ref['precision_at_1'], abs=1e-6) and got['map_at_r'] == pytest.approx(ref['mean_average_precision_at_r'], abs=1e-6)


def test_hs_at_r_matches_the_official_algorithm():
    g = np.random.default_rng(8)
    y = g.integers(0, 100, 600); e = g.normal(size=(600, 12)) + 0.8 * g.normal(size=(100, 12))[y]
    want = bf_hsr(e, y, D100, 250)
    got = hs_at_r(e, y, D100, R=250)
    assert np.allclose(got, want, atol=1e-10)
    assert ahs(e, y, D100, R=250) == pytest.approx(np.trapezoid(want, dx=1 / 249))
    assert np.allclose(hs_at_r(e, y, D100, R=40, beta=3.0), bf_hsr(e, y, D100, 40, beta=3.0), atol=1e-10)


def old_select_np(A, K):
    "The CPU selection before issue #13 (commit 8233e48), frozen: introselect, then an unstable sort; order among equal values unspecified."
    n = A.shape[1]
    if K >= n: return np.argsort(-A, axis=1)
    out, step = np.empty((len(A), K), dtype=np.int64), max(1, 2 ** 20 // n)
    for i in range(0, len(A), step):
        B = A[i:i + step]
        t = np.partition(B, n - K, axis=1)[:, n - K]
        f = np.flatnonzero(B >= t[:, None])
        if len(f) == len(B) * K: cols = (f % n).reshape(len(B), K)
        else: cols = np.argpartition(B, n - K, axis=1)[:, n - K:]
        out[i:i + step] = np.take_along_axis(cols, np.argsort(-np.take_along_axis(B, cols, 1), axis=1), 1)
    return out


def _tied_data(n=2000, seed=9, dup_fraction=0.5):
    "Unit embeddings where a fraction of the items duplicate another one (exact ties), and the labels."
    g = np.random.default_rng(seed)
    e = g.normal(size=(n, 8)).astype(np.float32)
    dup = g.random(n) < dup_fraction; e[dup] = e[g.integers(0, n, dup.sum())]
    return F.normalize(torch.tensor(e), dim=1), g.integers(0, 100, n)


def test_neighbours_are_exact_with_duplicates():
    e, _ = _tied_data()
    S = e @ e.T; S.fill_diagonal_(float('-inf'))
    want = torch.sort(S, dim=1, descending=True, stable=True).indices             # similarity, then the lower index
    for K in (1, 37, 250, 1999):
        for numpy_path in (True, False):
            M._NUMPY_ON_CPU = numpy_path
            try: got = torch.cat([M._topk_rows(Sc, K) for _, _, Sc in M._similarity_chunks(e, chunk_size=300)])
            finally: M._NUMPY_ON_CPU = True
            assert torch.equal(got, want[:, :K])
            assert not (got == torch.arange(2000)[:, None]).any()           # never the query itself


def test_old_and_new_selection_agree_on_random_data_with_ties():
    "Same similarities in the same order everywhere, the same neighbours wherever a row's K + 1 largest hold no tie; with ties, the new order is the stable one."
    e, _ = _tied_data(dup_fraction=0.02)
    S = (e @ e.T).fill_diagonal_(float('-inf')).numpy()
    for K in (5, 60, 1500):
        old, new = old_select_np(S, K), M._select_np(S, K)
        assert np.array_equal(np.take_along_axis(S, old, 1), np.take_along_axis(S, new, 1))
        top = -np.sort(-S, axis=1)[:, :K + 1]
        tie_free = (np.diff(top, axis=1) != 0).all(1)
        assert (~tie_free).any() and (tie_free.any() or K > 100)          # rows with ties occur (and, for small K, rows without)
        assert np.array_equal(old[tie_free], new[tie_free])
        assert np.array_equal(new, np.argsort(-S, axis=1, kind='stable')[:, :K])
        assert not np.array_equal(old, new)                               # the old order among ties was another one


def test_evaluate_hierarchy_old_and_new_selection(monkeypatch):
    """Retrieval measures depend on each query's sequence of neighbour labels only. Old and new give the same sequence wherever a row's ties are between
    items of one label; each query's values lie in [0, 1], so the means differ by at most (rows whose sequences differ) / n. With ties across labels
    the new order is the stable one (`test_neighbours_are_exact_with_duplicates`)."""
    g = np.random.default_rng(11)
    n = 3000; y = g.integers(0, 100, n); e = g.normal(size=(n, 16)) + g.normal(size=(100, 16))[y]
    src = g.integers(0, n, 600); e[:600], y[:600] = e[src], y[src]         # duplicates keep their label: ties whose order cannot change a measure
    en, _ = M._emb_labels(e, y); S = (en @ en.T).fill_diagonal_(float('-inf')).numpy()
    K = max(250, int(M._relevant_counts(torch.tensor(y)).max()))
    old_l, new_l = y[old_select_np(S, K)], y[M._select_np(S, K)]
    v = -np.sort(-S, axis=1)[:, :K + 1]; order = np.argsort(-S, axis=1, kind='stable')[:, :K + 1]
    same_v = np.diff(v, axis=1) == 0; cross = (same_v & (np.diff(y[order], axis=1) != 0)).any(1)   # rows with a tie across labels
    assert same_v.any(1).mean() > 0.9                                    # ties are everywhere...
    assert np.array_equal(old_l[~cross], new_l[~cross])                   # ...and change no label sequence unless they cross labels
    differ = (old_l != new_l).any(1).sum()
    new = evaluate_hierarchy(C100, emb=e, y=y)
    monkeypatch.setattr(M, '_select_np', lambda A, K, t=None: old_select_np(A, K))
    old = evaluate_hierarchy(C100, emb=e, y=y)
    assert new.keys() == old.keys() and all(abs(new[k] - old[k]) <= differ / n + 1e-12 for k in new)
    assert differ <= cross.sum() < 0.05 * n


def test_no_n_by_n_matrix(monkeypatch):
    "Chunks never hold more than CHUNK_ELEMENTS similarities, and neither chunking nor the CPU path changes any value."
    g = np.random.default_rng(10)
    n = 3000; y = g.integers(0, 100, n); e = g.normal(size=(n, 16)) + g.normal(size=(100, 16))[y]; s = g.normal(size=(n, 100))
    full = evaluate_hierarchy(C100, emb=e, y=y, scores=s)
    seen, orig = [], M._similarity_chunks
    def spy(*a, **k):
        for a_, b_, S in orig(*a, **k): seen.append(S.numel()); yield a_, b_, S
    monkeypatch.setattr(M, '_similarity_chunks', spy)
    monkeypatch.setattr(M, 'CHUNK_ELEMENTS', 2 ** 18)
    small = evaluate_hierarchy(C100, emb=e, y=y, scores=s)
    assert max(seen) <= 2 ** 18 and len(seen) > 30
    assert small.keys() == full.keys() and all(small[k] == pytest.approx(full[k], rel=1e-10) for k in full)
    monkeypatch.setattr(M, '_NUMPY_ON_CPU', False)
    torch_path = evaluate_hierarchy(C100, emb=e, y=y, scores=s)
    assert all(torch_path[k] == pytest.approx(full[k], rel=1e-12) for k in full)  # ties: the lower index first on both paths


# ---------------------------------------------------------------- tests of significance
def test_compare_runs_matches_scipy():
    a, b = [0.61, 0.64, 0.60, 0.66, 0.63], [0.58, 0.60, 0.61, 0.62, 0.59]
    c = compare_runs(a, b)
    assert c['t_p'] == pytest.approx(stats.ttest_rel(a, b).pvalue) and c['wilcoxon_p'] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    u = compare_runs(a, b, paired=False, alternative='greater')
    assert u['t_p'] == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative='greater').pvalue)
    assert u['wilcoxon_p'] == pytest.approx(stats.mannwhitneyu(a, b, alternative='greater').pvalue)
    with pytest.raises(MetricInputError, match='NaN'): compare_runs([1, np.nan], [1, 2])


@pytest.mark.parametrize('statistic', ['classwise', 'elementwise'])
def test_permutation_test_matches_relabelling_loop(statistic):
    g = np.random.default_rng(11)
    h = load_hierarchy('fashion_mnist'); T = h.distance_matrix()
    E = chord_distances(g.normal(size=(10, 5)))
    res = permutation_test(E, T, statistic=statistic, n_permutations=300, seed=3)
    perms = np.random.default_rng(3).random((300, 10)).argsort(1)
    f = classwise_spearman if statistic == 'classwise' else elementwise_spearman
    null = np.array([f(E[p][:, p], T)[0] for p in perms])
    obs = f(E, T)[0]
    assert res['observed'] == pytest.approx(obs)
    assert res['chance_mean'] == pytest.approx(null.mean()) and res['chance_sd'] == pytest.approx(null.std(ddof=1))
    assert res['p'] == pytest.approx((1 + (null >= obs - 1e-12).sum()) / 301)


# ---------------------------------------------------------------- invariances (hypothesis)
@st.composite
def trees(draw):
    "A random hierarchy of equal-depth leaves: 2-3 levels, 2-4 children per node, 4-24 classes."
    depth = draw(st.integers(2, 3)); paths = [[]]
    for l in range(depth):
        paths = [p + [f"{'/'.join(p)}:{i}"] for p in paths for i in range(draw(st.integers(2, 3 if l < depth - 1 else 4)))]
    return Hierarchy(paths)


def tree_embedding(h):
    blocks = [F.one_hot(torch.as_tensor(h.ancestors(l)[0]), len(h.ancestors(l)[1])) for l in range(1, h.depth + 1)]
    return F.normalize(torch.cat(blocks, 1).double(), dim=1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=trees(), seed=st.integers(0, 2 ** 16))
def test_consistent_class_permutation_changes_nothing(h, seed):
    C = h.n_classes; g = np.random.default_rng(seed)
    n = 3 * C; y = np.r_[np.arange(C), g.integers(0, C, n - C)]
    s, e, reps = g.normal(size=(n, C)), g.normal(size=(n, 6)), g.normal(size=(C, 6))
    pi = g.permutation(C); inv = np.argsort(pi)                              # new class j is old class inv[j]
    h2 = Hierarchy([h.paths[i] for i in inv])
    kw = dict(k=min(2, C - 2), R=min(20, n - 1), hs_ranks=(1, 5))
    a = evaluate_hierarchy(h, reps=reps, emb=e, y=y, scores=s, **kw)
    b = evaluate_hierarchy(h2, reps=reps[inv], emb=e, y=pi[y], scores=s[:, inv], **kw)
    for key in a:
        if key in ('rf', 'norm_rf'): continue        # UPGMA of the tree distances resolves ties in input order (documented)
        if key.startswith('proxy_') or key.startswith('acc_l'): continue      # level ids are renumbered: checked below
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    for l in range(1, h.depth):
        assert a[f'acc_l{l}'] == pytest.approx(b[f'acc_l{l}'])
        for m in ('p_at_1', 'r_precision', 'map_at_r'): assert a[f'proxy_{m}_l{l}'] == pytest.approx(b[f'proxy_{m}_l{l}'], nan_ok=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=trees(), seed=st.integers(0, 2 ** 16))
def test_perfect_tree_embedding(h, seed):
    "Class vectors whose cosine grows with the LCA depth: AHC 0, HS@R 1, classwise Spearman 1 with the tree's ties and the tie ceiling without them."
    C, g = h.n_classes, torch.Generator().manual_seed(seed)
    P = tree_embedding(h); D = h.distance_matrix()
    assert classwise_spearman(chord_distances(P), D) == (1.0, 0.0) and elementwise_spearman(chord_distances(P), D)[0] == pytest.approx(1.0)
    De = chord_distances(P) + 1e-6 * (lambda a: a + a.T)(torch.rand(C, C, generator=g, dtype=torch.float64)).numpy()
    np.fill_diagonal(De, 0)
    assert classwise_spearman(De, D)[0] == pytest.approx(M._tie_ceiling(D), abs=1e-9)
    y = torch.cat([torch.arange(C), torch.randint(0, C, (2 * C,), generator=g)])
    e = P[y] + 1e-6 * torch.randn(len(y), P.shape[1], generator=g, dtype=torch.float64)
    ev = evaluate_hierarchy(h, emb=e, y=y, scores=e @ P.T, k=1, R=len(y) - 1, hs_ranks=())
    assert ev['ahc'] == 0 and ev['top1'] == 1
    assert np.allclose(hs_at_r(e, y, D, R=len(y) - 1), 1.0) and ev[f'ahs_at_{len(y) - 1}'] == pytest.approx(1.0)


# ---------------------------------------------------------------- bad inputs and documented edge values
def test_bad_inputs_name_the_problem():
    s, y, e = _rand(200, 100)
    with pytest.raises(MetricInputError, match='NaN'): topk_accuracy(np.where(np.eye(200, 100) > 0, np.nan, s), y, 1)
    with pytest.raises(MetricInputError, match='NaN'): hs_at_r(np.where(np.eye(200, 16) > 0, np.nan, e), y, D100, 5)
    with pytest.raises(MetricInputError, match='NaN'): classwise_spearman(np.full((4, 4), np.nan), D100[:4, :4])
    with pytest.raises(MetricInputError, match=r'1\.\.100'): topk_accuracy(s, y, 101)
    with pytest.raises(MetricInputError, match=r'k \+ 2 <= C'): hp_at_k(s, y, D100, 99)
    with pytest.raises(MetricInputError, match='outside 0..99'): ahc(s, np.r_[y[:-1], 100], D100)
    with pytest.raises(MetricInputError, match='4 classes'): ahc(s[:, :4], y % 4, D100)
    with pytest.raises(MetricInputError, match='the number of other test items'): hs_at_r(e, y, D100, R=200)
    with pytest.raises(MetricInputError, match='have no samples'): class_means(e, y % 50, n_classes=100)
    with pytest.raises(MetricInputError, match="`reps` must be C x d"): evaluate_hierarchy(C100, reps=e[:10])
    with pytest.raises(MetricInputError, match='0 < K < L'): average_k_threshold(s, 100)


def test_documented_edge_values():
    s, y, e = _rand(200, 100)
    few = y < 50                                                         # classes 50..99 absent from this test set
    assert topk_accuracy(s[few], y[few], 5, macro=True) == pytest.approx(np.nanmean(topk_accuracy(s[few], y[few], 5, per_class=True)))
    assert np.isnan(topk_accuracy(s[few], y[few], 5, per_class=True)[50:]).all()
    assert np.isnan(proxy_retrieval(e[:100], np.arange(100))['map_at_r'])              # every group has one member
    assert proxy_retrieval(e[:100], C100.ancestors(0)[0])['r_precision'] == 1.0       # one group of everything
    ev = evaluate_hierarchy(C100, emb=e[few], y=y[few], R=50, hs_ranks=(1, 50))         # absent classes: nothing to retrieve, fine
    assert 0 < ev['hs_at_50'] <= 1


def test_sign_flip_and_holm_against_references():
    "The exact sign-flip p against a brute-force enumeration; Holm against statsmodels where it is installed (else a hand example)."
    import itertools
    from hier_repro.metrics import sign_flip_test, holm
    rng = np.random.default_rng(3)
    for n in (3, 5, 8):
        d = rng.normal(0.01, 0.02, n)
        sums = np.array([np.dot(s, d) for s in itertools.product([-1, 1], repeat=n)])
        assert sign_flip_test(d, 'greater') == pytest.approx(np.mean(sums >= d.sum() - 1e-12))
        assert sign_flip_test(d, 'two-sided') == pytest.approx(np.mean(np.abs(sums) >= abs(d.sum()) - 1e-12))
    c = compare_runs([0.9505, 0.948, 0.9525], [0.948, 0.9455, 0.95], alternative='greater')   # sd of the differences 0
    assert np.isnan(c['t_p']) and c['test'] == 'sign-flip (exact)' and c['p'] == pytest.approx(0.125)
    p = rng.uniform(0, 0.1, 12)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    multipletests = pytest.importorskip('statsmodels.stats.multitest').multipletests
    assert holm(p) == pytest.approx(multipletests(p, method='holm')[1])
