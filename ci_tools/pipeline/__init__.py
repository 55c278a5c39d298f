"""The phases of a release and their rules: deploy, probe, roll back, cut over, check."""
