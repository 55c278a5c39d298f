"""The kit's version: the health JSON names it (``contract.kit``) so the pipeline knows which
kit a release carries. Raise it when what the kit answers changes."""

__version__ = "1.1"  # 1.1: the arrival record (release_kit/arrival.py)
