"""Run the whole bad-input corpus and print one summary line (and each failure).

python tests/badinput/run_corpus.py            # all cases
python tests/badinput/run_corpus.py geojson/   # only names starting with a prefix
"""

from __future__ import annotations

import collections
import importlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from badinput_corpus import Case, explain, run_case, skip_reason, verdict


def all_cases() -> list[Case]:
    """The cases of every ``badinput_cases_*.py`` module beside this file, in name order."""
    cases: list[Case] = []
    for path in sorted(Path(__file__).resolve().parent.glob("badinput_cases_*.py")):
        cases.extend(importlib.import_module(path.stem).CASES)
    return cases


def main(prefixes: list[str]) -> int:
    cases = [c for c in all_cases() if not prefixes or c.name.startswith(tuple(prefixes))]
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="histo-badinput-") as tmp:
        for i, case in enumerate(cases):
            if skip_reason(case):
                counts["skipped"] += 1
                continue
            outcome = run_case(case, Path(tmp) / f"{i:04d}")
            result = verdict(case, outcome)
            counts[result if result != "ok" else ("clear error" if case.kind == "error" else "handled")] += 1
            if result != "ok":
                print(explain(case, outcome), file=sys.stderr)
    print(
        f"bad-input corpus: {len(cases)} cases, {counts['clear error']} clear errors, "
        f"{counts['handled']} handled with a warning, {counts['traceback']} tracebacks, "
        f"{counts['silent']} silently accepted, {counts['lost']} lost outputs, "
        f"{counts['unclear'] + counts['wrong-exit']} unclear or wrong exit code"
        + (f" ({counts['skipped']} skipped here)" if counts["skipped"] else "")
    )
    return 0 if counts["clear error"] + counts["handled"] + counts["skipped"] == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
