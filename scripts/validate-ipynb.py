#!/usr/bin/env python3
"""Validate Jupyter notebooks against the nbformat v4 schema.

Usage: validate-ipynb.py FILE...

Prints "ok FILE" for each valid notebook. For each invalid one, prints
"invalid FILE: <reason>" to stderr; exits 1 if any file was invalid.

nbformat silently repairs missing or duplicate cell ids in nbformat >= 4.5
notebooks (it only emits a warning). This script treats those warnings as
validation failures, so a notebook is reported ok only if it is valid as
written on disk.
"""

import json
import sys
import warnings

import nbformat
from nbformat.validator import MissingIDFieldWarning
from nbformat.warnings import DuplicateCellId


def check(path):
    """Return None if the notebook at path is valid, else a reason string."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with open(path, encoding="utf-8") as f:
                nb = nbformat.read(f, as_version=nbformat.NO_CONVERT)
        except Exception as e:  # unreadable, not JSON, not a notebook
            return f"{type(e).__name__}: {e}"
        major = nb.get("nbformat")
        if major != 4:
            return f"unsupported nbformat major version {major!r} (expected 4)"
        # Cell ids as written on disk (nbformat may repair them in memory).
        with open(path, encoding="utf-8") as f:
            raw_cells = json.load(f).get("cells", [])
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as e:
            where = "/".join(str(p) for p in getattr(e, "absolute_path", []))
            message = str(getattr(e, "message", None) or e)
            return f"{message} (at {where})" if where else message
        except Exception as e:
            return f"{type(e).__name__}: {e}"
    for w in caught:
        if issubclass(w.category, MissingIDFieldWarning):
            missing = [i for i, c in enumerate(raw_cells) if "id" not in c]
            return f"cell(s) {missing} missing an id (required for nbformat >= 4.5)"
        if issubclass(w.category, DuplicateCellId):
            seen, dups = set(), []
            for c in raw_cells:
                cid = c.get("id")
                if cid in seen and cid not in dups:
                    dups.append(cid)
                seen.add(cid)
            return f"duplicate cell id(s) {dups}"
    return None


def main(argv):
    if not argv:
        print("usage: validate-ipynb.py FILE...", file=sys.stderr)
        return 2
    failed = False
    for path in argv:
        reason = check(path)
        if reason is None:
            print(f"ok {path}")
        else:
            reason = " ".join(reason.split())
            print(f"invalid {path}: {reason}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
