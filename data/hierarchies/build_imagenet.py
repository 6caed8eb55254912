#!/usr/bin/env python
"""Build the ImageNet-1k class hierarchy (data/hierarchies/imagenet1k.csv) from WordNet 3.0.

Usage: python data/hierarchies/build_imagenet.py [--wordnet /usr/share/wordnet] [--synsets PATH_or_wheel]
                                                 [--tree first|shortest] [--out CSV]

--wordnet   folder holding WordNet 3.0's `data.noun` (Debian: `apt-get install wordnet-base`).
--synsets   the 1000 ImageNet-1k wnids in class-index order, one per line: a text file, or a timm wheel
            (`pip download timm --no-deps -d /tmp/timm_whl`), read from its `timm/data/_info/imagenet_synsets.txt`.
            Default: the newest /tmp/timm_whl/timm-*.whl.
--tree      WordNet's noun hierarchy is a DAG; each class gets one path up to entity (n00001740):
            `first`    (default) follows the first hypernym pointer ('@' or '@i', in file order) of every synset;
            `shortest` takes the shortest path to entity; ties go to the first in pointer order.
--out       the CSV to write (default: imagenet1k.csv for `first`, imagenet1k_shortest.csv for `shortest`,
            beside this script).

Every synset on the chosen paths is kept as a node (single-child chains included), so leaves sit at
different depths. Leaf (class) name = the synset's first lemma, '_' -> ' '; when several classes share it
(e.g. 'crane', the bird and the machine) each of them gets ' (<wnid>)' appended. Internal node name =
'<first lemma>.<wnid>', so two synsets never merge. Output columns: label,class,path,wnid.
"""
import argparse, glob, os, sys, zipfile
from collections import Counter
from pathlib import Path
from hier_repro.hierarchy import Hierarchy

ENTITY = '00001740'
HYPERNYM = ('@', '@i')
here = Path(__file__).resolve().parent


def read_data_noun(path):
    "WordNet data.noun -> {offset: (first lemma, [hypernym offsets in pointer order])}."
    syn = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.startswith('  '): continue                      # licence header
            t = line.split(' | ', 1)[0].split()
            off, w_cnt = t[0], int(t[3], 16)
            lemma = t[4]
            i = 4 + 2 * w_cnt
            p_cnt = int(t[i]); i += 1
            hyp = []
            for k in range(p_cnt):
                sym, poff, pos = t[i + 4 * k: i + 4 * k + 3]
                if sym in HYPERNYM and pos == 'n': hyp.append(poff)
            syn[off] = (lemma, hyp)
    return syn


def read_synsets(src):
    "The ImageNet-1k wnids in class-index order, from a text file or a timm wheel."
    if src is None:
        whl = sorted(glob.glob('/tmp/timm_whl/timm-*.whl'), key=os.path.getmtime)
        if not whl: sys.exit("no --synsets given and no /tmp/timm_whl/timm-*.whl: run `pip download timm --no-deps -d /tmp/timm_whl`")
        src = whl[-1]
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as z: text = z.read('timm/data/_info/imagenet_synsets.txt').decode('utf-8')
    else: text = Path(src).read_text(encoding='utf-8')
    wnids = [l.strip() for l in text.splitlines() if l.strip()]
    if len(wnids) != 1000 or len(set(wnids)) != 1000 or not all(w[0] == 'n' and len(w) == 9 for w in wnids):
        sys.exit(f"{src}: expected 1000 distinct wnids (n + 8 digits), got {len(wnids)} lines")
    return wnids


def path_first(syn, off):
    "Root-first offsets following the first hypernym of each synset."
    p = [off]
    while syn[p[-1]][1]:
        p.append(syn[p[-1]][1][0])
        if len(p) > 100: raise ValueError(f'hypernym cycle above {off}')
    return p[::-1]


def path_shortest(syn, off, memo):
    "Root-first shortest path to a root; ties -> first hypernym in pointer order (first in DFS order)."
    if off not in memo:
        best = None
        for h in syn[off][1]:
            q = path_shortest(syn, h, memo)
            if best is None or len(q) < len(best): best = q
        memo[off] = (best or []) + [off]
    return memo[off]


def n_paths(syn, off, memo):
    "Number of distinct hypernym paths from `off` to a root."
    if off not in memo: memo[off] = sum(n_paths(syn, h, memo) for h in syn[off][1]) if syn[off][1] else 1
    return memo[off]


def build(wordnet, wnids, tree='first'):
    "The Hierarchy of the classes `wnids`, plus the number of classes with more than one hypernym path."
    syn = read_data_noun(Path(wordnet) / 'data.noun')
    missing = [w for w in wnids if w[1:] not in syn]
    if missing: sys.exit(f"wnids {missing[:5]} are not noun synsets of {wordnet}/data.noun (WordNet 3.0 needed)")
    memo = {}
    offs = [path_first(syn, w[1:]) if tree == 'first' else path_shortest(syn, w[1:], memo) for w in wnids]
    bad = [p for p in offs if p[0] != ENTITY]
    if bad: sys.exit(f"{len(bad)} paths do not end at entity n{ENTITY}")
    leaf = set(w[1:] for w in wnids)
    inner = [w for w in wnids if any(w[1:] in p[:-1] for p in offs)]
    if inner: sys.exit(f"classes {inner[:5]} are ancestors of other classes on the chosen paths: leaf names would not match")
    lemma = lambda o: syn[o][0].replace('_', ' ')
    count = Counter(lemma(w[1:]) for w in wnids)
    leaf_name = lambda w: lemma(w[1:]) + (f' (n{w[1:]})' if count[lemma(w[1:])] > 1 else '')
    paths = [[f'{syn[o][0]}.n{o}' for o in p[:-1]] + [leaf_name(w)] for p, w in zip(offs, wnids)]
    pm = {}
    multi = sum(n_paths(syn, w[1:], pm) > 1 for w in wnids)
    return Hierarchy(paths, name='imagenet1k' + ('' if tree == 'first' else '_shortest')), multi


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--wordnet', default='/usr/share/wordnet')
    ap.add_argument('--synsets', default=None)
    ap.add_argument('--tree', choices=['first', 'shortest'], default='first')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    wnids = read_synsets(a.synsets)
    h, multi = build(a.wordnet, wnids, a.tree)
    out = Path(a.out) if a.out else here / ('imagenet1k.csv' if a.tree == 'first' else 'imagenet1k_shortest.csv')
    h.to_csv(out, extra={'wnid': wnids})
    dep = h.leaf_depths
    print(f"{out}: {h!r}; leaf depths {dep.min()}-{dep.max()} below the root; {multi} of {len(wnids)} classes have "
          f"more than one hypernym path; {out.stat().st_size:,} bytes")


if __name__ == '__main__': main()
