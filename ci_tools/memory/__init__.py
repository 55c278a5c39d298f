"""Copying one user's memory between Redis instances, so that nothing can be lost.

The pieces, in the order a write uses them: ``choices`` and ``model`` (its words and its
outcome), ``keys`` (user ids, which keys are the user's), ``records`` (reading keys of every
type, atomically, a batch a call), ``files`` (snapshots and backups that cannot lie),
``writer`` (the one compare-and-set write path), ``job`` with ``planning`` and ``applying``
(plan and back up, then write and verify), ``servers`` (the source and target Redis and
their markers), then the use cases: ``ops`` (copy, export, diff, restore, seed) and ``undo`` (put a backup
back). Beside them, the safety net for a whole environment: ``restore_points`` (snapshot it,
restore all users or one), and ``throwaway`` (the replay's private copy of a snapshot).
"""
