#!/usr/bin/env python
"""Rebuild the project's hierarchy CSVs (data/hierarchies/*.csv) from the published files.

Usage: python data/hierarchies/build.py [SOURCE]   (SOURCE defaults to ../shared/data/hierarchies)
Each output is `label,class,path[,extra...]`, rows in label order, `path` joined by '//'.
The trees are facts taken from the sources listed in data/hierarchies/README.md.
"""
import sys
from pathlib import Path
from hier_repro.hierarchy import (Hierarchy, read_proxydr_csv, read_cvjena, read_cifar100_meta,
                                  read_plantnet300k)

here = Path(__file__).resolve().parent
src = Path(sys.argv[1] if len(sys.argv) > 1 else here.parent.parent.parent / 'shared' / 'data' / 'hierarchies')
if not src.exists(): sys.exit(f"{src} not found: pass the folder holding the published hierarchy files")

# CIFAR-100: the ProxyDR 4-level tree; its third level is the official superclass, checked against `meta`.
cifar = read_proxydr_csv(src / 'cifar100/proxydr_CIFAR100_cls.csv')
meta = read_cifar100_meta(src / 'cifar100/cifar-100-python_meta')
assert cifar.classes == meta['fine'], 'ProxyDR class order differs from the official fine labels'
coarse_of = [p[2] for p in cifar.paths]
assert sorted(set(coarse_of)) == sorted(meta['coarse']), 'ProxyDR level 3 is not the official superclass set'
cifar.to_csv(here / 'cifar100.csv', extra={'coarse_label': [meta['coarse'].index(c) for c in coarse_of]})
Hierarchy([[c, f] for c, f in zip(coarse_of, meta['fine'])]).to_csv(
    here / 'cifar100_coarse.csv', extra={'coarse_label': [meta['coarse'].index(c) for c in coarse_of]})

# CUB-200-2011: cvjena flat taxonomy (ids 1-200 = official class ids). Four classes are identified
# only to genus there (e.g. 044.Frigatebird -> Fregata); they become '<genus> sp.' so all 200 sit at
# species level: Aves -> order -> family -> genus -> species. Leaves are the official class names.
names = [l.split(' ', 1)[1].strip() for l in (src.parent / 'cub/official_metadata/classes.txt').read_text().splitlines()] \
    if (src.parent / 'cub/official_metadata/classes.txt').exists() else None
tax = read_cvjena(src / 'cub/cvjena_cub_flat.parent-child.txt', src / 'cub/cvjena_classes_flat.txt', classes=range(1, 201))
species = [p[-1] if len(p) == 4 else p[-1] + ' sp.' for p in tax.paths]
cub_paths = [[tax.root, *p[:3], n] for p, n in zip(tax.paths, names)]
Hierarchy(cub_paths).to_csv(here / 'cub.csv', extra={'class_id': list(range(1, 201)), 'species': species})

# NABirds: the ProxyDR tree (555 classes, its own label order), with the official class number kept.
import csv
nab = read_proxydr_csv(src / 'nabirds/proxydr_nabirds_cls2.csv')
rows = sorted(csv.DictReader(open(src / 'nabirds/proxydr_nabirds_cls2.csv', encoding='utf-8'), delimiter='|'), key=lambda r: int(r['Number']))
nab.to_csv(here / 'nabirds.csv', extra={'class_id': [int(r['Class number']) for r in rows]})

# Plankton (ProxyDR): dataset-folder prefix stripped.
for f, n in [('MicroS', 'micro_s'), ('MicroL', 'micro_l'), ('MesoZ', 'meso_z')]:
    read_proxydr_csv(src / f'plankton/proxydr_{f}_cls.csv').to_csv(here / f'{n}.csv')

# Pl@ntNet-300K: genus (first word of the scientific name) -> species; leaf = '<species id> <name>'.
read_plantnet300k(src / 'plantnet300k/class_idx_to_species_id.json',
                  src / 'plantnet300k/plantnet300K_species_id_2_name.json').to_csv(here / 'plantnet300k.csv')

# Oxford-IIIT Pets: official class ids 1-37 are the breeds sorted case-insensitively; capitalised = cat.
breeds = sorted("""Abyssinian Bengal Birman Bombay British_Shorthair Egyptian_Mau Maine_Coon Persian Ragdoll Russian_Blue
Siamese Sphynx american_bulldog american_pit_bull_terrier basset_hound beagle boxer chihuahua english_cocker_spaniel
english_setter german_shorthaired great_pyrenees havanese japanese_chin keeshond leonberger miniature_pinscher
newfoundland pomeranian pug saint_bernard samoyed scottish_terrier shiba_inu staffordshire_bull_terrier
wheaten_terrier yorkshire_terrier""".split(), key=str.lower)
Hierarchy([['cat' if b[0].isupper() else 'dog', b] for b in breeds]).to_csv(
    here / 'pets.csv', extra={'class_id': list(range(1, 38))})

# Fashion-MNIST: hand-made tree (README.md explains the choice).
fm = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
group = {'T-shirt/top': 'tops', 'Pullover': 'tops', 'Coat': 'tops', 'Shirt': 'tops', 'Trouser': 'bottoms_and_dresses',
         'Dress': 'bottoms_and_dresses', 'Sandal': 'footwear', 'Sneaker': 'footwear', 'Ankle boot': 'footwear', 'Bag': 'bags'}
top = {'tops': 'clothing', 'bottoms_and_dresses': 'clothing', 'footwear': 'accessories', 'bags': 'accessories'}
Hierarchy([[top[group[c]], group[c], c] for c in fm]).to_csv(here / 'fashion_mnist.csv')
print('wrote', ', '.join(sorted(p.name for p in here.glob('*.csv'))))
