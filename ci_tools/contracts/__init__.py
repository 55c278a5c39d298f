"""The providers' published API descriptions: which operations we use, and what changed.

``specs/`` holds the vendored copies (provenance in ``specs/README.md``); the stand-ins
validate every request and answer against them (``sandbox.contract``), and
``ci-tools contracts diff`` compares a vendored copy with what a provider publishes now.
"""

from pathlib import Path

SPECS = Path(__file__).parent / "specs"
