"""Copying one user's memory between Redis instances, so that nothing can be lost.

The pieces, in the order a copy uses them: ``ids`` (what a user id may be),
``keys`` (which keys are the user's), ``records`` (reading keys of every type in
pipelined batches), ``files`` (snapshots and backups on disk, optionally
encrypted), ``writer`` (writing records atomically per key), ``copy`` (the job: plan,
back up, write, verify), then the use cases: ``sides`` (the two servers and their
markers), ``ops`` (copy, export, diff, restore), ``undo`` (put a backup back) and
``seed`` (a pasted profile as initial memory). Beside them, the safety net for a whole
environment: ``points`` (snapshot it, restore all users or one) and ``net`` (is there a
recent snapshot, does the Key Value keep its data).
"""
