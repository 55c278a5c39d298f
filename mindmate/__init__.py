"""MindMate, the reference bot service that render.yaml deploys.

It is deliberately small, but it holds the contracts the pipeline depends on:
webhook mode, memory under a per-environment key prefix, an environment marker in
Redis, and a ``/healthz`` that says which environment, commit, bot and Redis it is
wired to.
"""
