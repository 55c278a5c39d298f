"""The memory commands' words: what a plan may decide for a key, and the policies a person chooses.

``StrEnum``s: they print and serialise as the words people read in the tables, the flags and
the ``--json`` documents (``create``, ``replace``…), while the type checker holds every
comparison to a known value. Imports nothing, so the parser can offer them as choices
without loading Redis.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What the plan does with one key."""

    CREATE = "create"  # absent on the target: written
    IDENTICAL = "identical"  # the target already holds the same: left alone, verified
    CONFLICT = "conflict"  # the target holds other data and the policy is fail: nothing is written
    REPLACE = "replace"  # the target holds other data and the policy is replace: overwritten
    SKIP = "skip"  # the target holds other data and the policy is skip: left alone
    EXPIRED = "expired"  # its TTL ran out while it was read: not resurrected
    VANISHED = "vanished"  # deleted at the source while it was read


WRITES = frozenset({Action.CREATE, Action.REPLACE})


class Conflict(StrEnum):
    """``--on-conflict``: what to do with a target key that already holds other data."""

    FAIL = "fail"
    SKIP = "skip"
    REPLACE = "replace"


class Stage(StrEnum):
    """``--stage``: a write in one step, or in two, so the backup leaves the runner before it.

    ``plan`` reads, plans and writes the snapshot and the backup (with every key's guard and
    the plan itself) and writes nothing to the target; a workflow uploads them; ``write`` then
    writes from exactly that plan and those guards. A runner lost in the write still leaves
    the undo in the run's artifact.
    """

    ALL = "all"
    PLAN = "plan"
    WRITE = "write"


class Uncovered(StrEnum):
    """Keys that name the user but match no memory pattern: an apply refuses them unless told."""

    REFUSE = "refuse"
    INCLUDE = "include"
    IGNORE = "ignore"
