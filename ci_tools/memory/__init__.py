"""Copying one user's memory between Redis instances, so that nothing can be lost.

In the order a write uses them: ``model`` (its words and outcome), ``keys`` (which keys are the
user's), ``records`` (reading keys atomically, a batch a call), ``files`` (snapshots and backups
that cannot lie), ``writer`` (the one compare-and-set write path), ``job`` (plan and back up, then
write and verify), ``servers`` (the two Redis and their markers), then the use cases: ``ops``
(copy, export, diff, restore, seed, undo). Beside them, for a whole environment:
``restore_points`` (snapshot it, restore all users or one) and ``throwaway`` (the replay's copy).
"""
