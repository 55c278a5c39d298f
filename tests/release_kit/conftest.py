"""The kit's in-process bot (``small_bot``, tests/release_kit/test_kit.py), for every test file here."""

from tests.release_kit.test_kit import small_bot

__all__ = ["small_bot"]
