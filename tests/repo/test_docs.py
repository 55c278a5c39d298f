"""The documents stand alone in a clone: the runbook comes first, and nothing links outside."""

from __future__ import annotations

import re

from tests.support import ROOT

DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_opens_with_the_owners_runbook():
    headings = re.findall(r"^## (.+)$", (ROOT / "README.md").read_text(), flags=re.M)
    assert headings[0].startswith("Runbook")


def test_no_document_points_outside_the_repository():
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text, doc.name
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            assert not target.startswith(".."), f"{doc.name} links to {target}"
            if not re.match(r"^[a-z]+://", target):
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which is not there"


def test_every_workflow_the_runbook_dispatches_exists():
    runbook = (ROOT / "README.md").read_text().split("## Runbook", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\*\*([a-z-]+)\*\* → Run", runbook))
    assert {"preflight", "cutover", "migrate-memory", "announce", "acceptance"} <= named
    for name in named:
        assert (ROOT / ".github" / "workflows" / f"{name}.yml").exists(), name
    steps = re.findall(r"^\| (\d+) \|", runbook, flags=re.M)
    assert len(steps) <= 10  # the target for steps by hand
