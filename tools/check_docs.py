#!/usr/bin/env python
"""Run nbdev's doc processing on every notebook, as `nbdev_readme`, `nbdev_proc_nbs`, `nbdev_preview` and
`nbdev_docs` do before handing the notebooks to Quarto (which this project does not require): the cells
with imports, exports, `#| exec_doc` or `show_doc` calls run in a fresh kernel with IN_TEST=1, every other
cell is not run. A showing cell run there must not use names from cells that are not run.
Usage: python tools/check_docs.py [NOTEBOOK ...]   (exit 1 naming each notebook that fails; writes only to a temp folder)."""
import os, sys, tempfile, warnings
from pathlib import Path
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.processors import FilterDefaults
from nbdev import serve_drv

def _rel(p): return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)

def doc_errors(nbs=None) -> dict:
    "Notebook path -> the error nbdev's doc processing raises on it and the cell's first lines, for each notebook that fails."
    nbs = [Path(o) for o in nbs] if nbs else nbglob(get_config().nbs_path, func=Path)
    errors = {}
    # nbdev warns about each cell holding imports and other code (such cells run while building docs): they pass here
    warnings.filterwarnings('ignore', message='Found cells containing imports and other code')
    with tempfile.TemporaryDirectory() as out:
        for nb in sorted(nbs):
            try: serve_drv.main((nb, Path(out) / nb.name, FilterDefaults))  # what proc_nbs does in each worker
            except Exception as e:
                os.environ.pop('IN_TEST', None)
                cause, (_, *src) = e.__cause__ or e, str(e).splitlines()
                errors[_rel(nb)] = f"{type(cause).__name__}: {cause}, in the cell\n    " + '\n    '.join(src[:3])
    return errors

if __name__ == '__main__':
    errs = doc_errors(sys.argv[1:])
    for nb, err in errs.items(): print(f"ERROR: {nb}: {err}", file=sys.stderr)
    if errs:
        print("nbdev's doc processing runs only the cells with imports, exports or show_doc: move the failing cell's "
              "imports into a cell of their own above it, or make the cell self-contained.", file=sys.stderr)
        sys.exit(1)
    print("nbdev's doc processing runs every notebook")
