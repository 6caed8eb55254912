"""Pack a CUB-200-2011 copy (official layout) into one .tar.xz that fits a size budget, for the GPU machine.

The metadata files travel unchanged (every image stays listed), so the library's CUB reader sees a partial
copy: it warns, leaves the missing images out, and every record says how many were missing
(`dataset.description.missing_images`). Every training image of the kept classes travels; test images travel
in a seeded, class-stratified order (round robin over classes) as far as the budget allows. A CARRY.json in
the archive says what was kept and why.

    python bench/pack_cub.py SRC OUT.tar.xz --max-mib 20 [--train-flag 0]
    python bench/pack_cub.py SRC OUT.tar.xz --classes 5 --train-per-class 10 --test-per-class 5   # a tiny fixture
"""
from __future__ import annotations
import argparse, io, json, lzma, random, sys, tarfile
from pathlib import Path

META = ('classes.txt', 'images.txt', 'image_class_labels.txt', 'train_test_split.txt')


def read_pairs(path: Path) -> dict[str, str]:
    "'<id> <value>' rows of a CUB metadata file."
    rows = [l.split(maxsplit=1) for l in path.read_text(encoding='utf-8').splitlines() if l.strip()]
    return {r[0]: r[1].strip() for r in rows}


def stratified_order(ids_by_class: dict[int, list[str]], seed: int) -> list[str]:
    "Image ids shuffled within each class, then taken round robin over the classes (in a shuffled class order)."
    rng = random.Random(seed)
    queues = {c: rng.sample(v, len(v)) for c, v in sorted(ids_by_class.items())}
    classes = rng.sample(sorted(queues), len(queues))
    out = []
    while any(queues.values()):
        for c in classes:
            if queues[c]: out.append(queues[c].pop())
    return out


def select(src: Path, train_flag: int, classes: int | None, train_per_class: int | None, test_per_class: int | None,
           seed: int) -> tuple[list[str], list[str], dict]:
    "(training ids, test ids in stratified order, {id: path}) of the kept classes."
    paths, labels, flags = (read_pairs(src / f) for f in ('images.txt', 'image_class_labels.txt', 'train_test_split.txt'))
    present = [i for i, p in paths.items() if (src / 'images' / p).is_file()]
    kept = sorted({int(labels[i]) for i in present})[:classes] if classes else None
    by = {'train': {}, 'test': {}}
    for i in present:
        c = int(labels[i])
        if kept is None or c in kept: by['train' if int(flags[i]) == train_flag else 'test'].setdefault(c, []).append(i)
    rng = random.Random(seed)
    train = [i for c, v in sorted(by['train'].items()) for i in (rng.sample(v, min(len(v), train_per_class)) if train_per_class else v)]
    test_by = {c: (rng.sample(v, min(len(v), test_per_class)) if test_per_class else v) for c, v in by['test'].items()}
    return train, stratified_order(test_by, seed), paths


def write_archive(out: Path, src: Path, name: str, ids: list[str], paths: dict, note: dict, preset: int = 6) -> int:
    "A deterministic .tar.xz of the metadata, CARRY.json and the images `ids` under `name/`; returns its size in bytes."
    def add(tf, arc, data: bytes):
        ti = tarfile.TarInfo(f'{name}/{arc}'); ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
        tf.addfile(ti, io.BytesIO(data))
    tmp = out.with_name(out.name + '.tmp')
    with lzma.open(tmp, 'wb', preset=preset) as xz, tarfile.open(fileobj=xz, mode='w', format=tarfile.PAX_FORMAT) as tf:
        for f in META: add(tf, f, (src / f).read_bytes())
        add(tf, 'CARRY.json', json.dumps(note, indent=1).encode())
        for i in sorted(ids, key=lambda i: paths[i]): add(tf, f'images/{paths[i]}', (src / 'images' / paths[i]).read_bytes())
    tmp.replace(out)
    return out.stat().st_size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', type=Path, help='a CUB-200-2011 folder in the official layout (images.txt, ..., images/)')
    p.add_argument('out', type=Path, help='the .tar.xz to write')
    p.add_argument('--max-mib', type=float, default=None, help='size budget of the archive (MiB); test images are left out to meet it')
    p.add_argument('--train-flag', type=int, default=0, help='value of train_test_split.txt that marks training images (0 for the shared subset)')
    p.add_argument('--classes', type=int, default=None, help='keep only the first N classes (official id order)')
    p.add_argument('--train-per-class', type=int, default=None, help='at most N training images per class (seeded)')
    p.add_argument('--test-per-class', type=int, default=None, help='at most N test images per class (seeded)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--name', default=None, help="top folder in the archive (default: the source folder's name)")
    a = p.parse_args(argv)
    src, name = a.src.resolve(), a.name or a.src.resolve().name
    missing = [f for f in META if not (src / f).is_file()] + ([] if (src / 'images').is_dir() else ['images/'])
    if missing: raise SystemExit(f"pack_cub: {src} is not a CUB folder in the official layout: {missing} missing")
    train, test, paths = select(src, a.train_flag, a.classes, a.train_per_class, a.test_per_class, a.seed)
    size = lambda ids: sum((src / 'images' / paths[i]).stat().st_size for i in ids)
    n_test, budget = len(test), None if a.max_mib is None else a.max_mib * 2**20
    if budget is not None and size(train) > budget:
        raise SystemExit(f"pack_cub: the {len(train)} training images alone take {size(train) / 2**20:.1f} MiB > --max-mib {a.max_mib}")
    raw_budget, best = None if budget is None else budget / 0.93, None   # xz saves about 7% on these JPEGs (their shared headers)
    for attempt in range(6):
        if raw_budget is not None:   # the longest stratified prefix of the test images whose raw bytes fit
            total, n_test = size(train), 0
            for i in test:
                s = (src / 'images' / paths[i]).stat().st_size
                if total + s > raw_budget: break
                total, n_test = total + s, n_test + 1
        kept_test = test[:n_test]
        note = dict(source=str(src), train_flag=a.train_flag, seed=a.seed, classes=a.classes, train_per_class=a.train_per_class,
                    test_per_class=a.test_per_class, train_images=len(train), test_images=len(kept_test), test_images_available=len(test),
                    test_fraction=round(len(kept_test) / max(1, len(test)), 4), max_mib=a.max_mib,
                    rule=('every training image of the kept classes (up to train_per_class); test images in a seeded class-stratified '
                          'round robin, as many as the size budget allows; metadata files unchanged (missing images are left out by the reader)'))
        got = write_archive(a.out, src, name, train + kept_test, paths, note)
        if budget is None: break
        if got <= budget: best = (n_test, got, note)
        if got <= budget and (got >= 0.985 * budget or n_test == len(test)): break
        raw_budget *= 0.995 * budget / got   # too big: shrink; well under: grow
    if budget is not None:
        if best is None: raise SystemExit(f"pack_cub: could not meet --max-mib {a.max_mib}")
        if best[1] != got:   # the last attempt overshot: rewrite the best one that fitted
            n_test, _, note = best
            got = write_archive(a.out, src, name, train + test[:n_test], paths, note)
    print(json.dumps(note | dict(archive=str(a.out), mib=round(got / 2**20, 2))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
