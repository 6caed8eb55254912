#!/usr/bin/env python
"Write environment.yml from settings.ini's requirements, dev_requirements and lab_requirements (tests/test_repo.py checks they agree)."
import configparser, re, shlex
from pathlib import Path

root = Path(__file__).resolve().parent.parent
KINDS = ('requirements', 'dev_requirements', 'lab_requirements')   # the library, then the extras [dev] and [lab]

def requirements() -> list[str]:
    "Every requirement of settings.ini, in order; a package listed twice is an error naming it."
    c = configparser.ConfigParser(delimiters=['=']); c.read(root / 'settings.ini')
    reqs = [r for k in KINDS for r in shlex.split(c['DEFAULT'].get(k, ''))]
    names = [re.split(r'[<>=!~\[; ]', r, maxsplit=1)[0].lower().replace('_', '-') for r in reqs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice: raise ValueError(f"settings.ini lists {twice} more than once: keep one line per package (the extras add to the requirements)")
    return reqs

def render() -> str:
    lines = ["# conda environment for hier_repro, generated from settings.ini by tools/make_environment.py",
             "# (the library, its [dev] extra and its [lab] extra: JupyterLab with widgets)",
             "name: hier_repro", "channels:", "  - conda-forge", "dependencies:", "  - python>=3.10", "  - pip", "  - pip:"]
    lines += [f'    - "{r}"' for r in requirements()] + ['    - "-e ."']
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    (root / 'environment.yml').write_text(render()); print('wrote environment.yml')
