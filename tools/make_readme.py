#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (nbdev's `nbdev_readme` needs Quarto, which this project
does not require): markdown cells verbatim, code cells as python blocks followed by their text output.
A markdown cell holding `<!-- VERDICTS -->` is replaced by figures/VERDICTS.md (the claims' verdicts, written by the report) or, before
there is one, by a line saying how to make it. The full tables stay in figures/RESULTS.md, which the README links to.
Usage: python tools/make_readme.py [--check]   (--check: exit 1 if README.md is out of date)."""
import sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parent.parent
NO_VERDICTS = '_no verdicts yet: run `make report`_'

def render(nb_path=root / 'nbs' / 'index.ipynb') -> str:
    "The README text that `nb_path` renders to."
    nb = nbformat.read(nb_path, as_version=4)
    out = []
    for c in nb.cells:
        src = c.source.strip()
        if c.cell_type == 'markdown' and src == '<!-- VERDICTS -->':
            v = root / 'figures' / 'VERDICTS.md'
            out.append(v.read_text(encoding='utf-8').strip() if v.exists() else NO_VERDICTS)
        elif c.cell_type == 'markdown': out.append(src)
        elif c.cell_type == 'code' and src and not src.startswith('#| hide'):
            out.append(f"```python\n{src}\n```")
            text = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '') for o in c.get('outputs', []))
            if text.strip(): out.append(f"```\n{text.rstrip()}\n```")
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text, readme = render(), root / 'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text(encoding='utf-8') == text
        if not ok: print('README.md is out of date: run `python tools/make_readme.py`', file=sys.stderr)
        sys.exit(0 if ok else 1)
    readme.write_text(text, encoding='utf-8'); print('wrote', readme)
