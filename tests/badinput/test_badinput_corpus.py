"""Every case of the bad-input corpus: one clear line or a warning, never a traceback, nothing lost."""

from __future__ import annotations

import pytest
from badinput_corpus import explain, run_case, skip_reason, verdict
from run_corpus import all_cases

CASES = all_cases()


def test_corpus_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path):
    reason = skip_reason(case)
    if reason:
        pytest.skip(reason)
    outcome = run_case(case, tmp_path / "case")
    assert verdict(case, outcome) == "ok", explain(case, outcome)
