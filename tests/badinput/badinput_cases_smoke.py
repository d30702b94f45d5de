"""A few cases that show the corpus format (the areas have their own modules)."""

from __future__ import annotations

from badinput_corpus import Case

CASES = [
    Case("cli/info/missing-file", ["info", "nope.svs"], expect=r"nope\.svs"),
    Case(
        "cli/info/not-a-slide",
        ["info", "notes.svs"],
        setup=lambda d: (d / "notes.svs").write_text("not a slide"),
        expect=r"notes\.svs.*not a TIFF",
    ),
]
