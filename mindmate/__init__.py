"""MindMate, the reference bot service that render.yaml deploys.

It is deliberately small, and it meets the pipeline's contract (docs/CONTRACT.md) the way
an owner's bot does: through the bot kit, ``release_kit`` (webhook, ``/healthz``, the probe
user, the environment marker and key prefix). What is MindMate's own: its handlers, its memory
store and its "took effect" markers.
"""
