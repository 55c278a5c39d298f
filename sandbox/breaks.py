"""Bad releases as real code, as a refactor would write them.

The Render stand-in builds each deployed commit and runs it, and the replay stage starts each
commit from its own checkout: so a bad release in a test or the rehearsal is a commit whose bot
really is broken, not a fault switched on in a stand-in.
"""

from __future__ import annotations

from sandbox.world import World, git

Edit = tuple[str, str, str]  # (path, the text as it reads, the text the break writes)

BREAKS: dict[str, Edit | tuple[Edit, ...]] = {
    # a webhook that forgot its secret: the probe's unsigned POST is answered 200
    "open webhook": (
        "release_kit/server.py",
        "        return hmac.compare_digest(given.encode(), self.secret.encode())",
        "        return True  # a refactor that forgot the secret",
    ),
    # a start that crashes: the instance exits before it serves (Render restarts it, and never switches)
    "crash at start": (
        "mindmate/__main__.py",
        "    settings = prepare()\n",
        "    settings = prepare(strict=True)  # type: ignore[call-arg]\n",
    ),
    # remembered facts moved to another key: its own /remember and /recall agree, so the probe
    # passes, and the daily user's facts under the old key are forgotten
    "forgets the daily user": (
        "mindmate/store.py",
        'return f"{prefix}memory:{user_id}"',
        'return f"{prefix}facts:{user_id}"',
    ),
    # the facts rewritten as one JSON value when read: it answers as before, but the live commit,
    # which reads a list, cannot read what it left (a rollback would not be safe)
    "reshapes memory": (
        "mindmate/store.py",
        "        return [str(f) for f in await self.client.lrange(memory_key(self.prefix, user_id), 0, -1)]",
        "        key = memory_key(self.prefix, user_id)\n"
        '        if await self.client.type(key) == "list":  # a new shape, migrated on read\n'
        "            facts = await self.client.lrange(key, 0, -1)\n"
        "            await self.client.delete(key)\n"
        "            await self.client.set(key, json.dumps(facts))\n"
        "        raw = await self.client.get(key)\n"
        "        return [str(f) for f in json.loads(raw)] if raw else []",
    ),
    # plain messages fail in their handler (a refactor's typo); commands still work, so the probe
    # passes, and the bot answers 200 for the failure (a retry would fail the same way)
    "plain text fails": (
        "mindmate/handlers.py",
        '        text = update.effective_message.text if update.effective_message else ""',
        '        text = update.effective_message.txt if update.effective_message else ""  # type: ignore[attr-defined]',
    ),
    # a migration at start that rewrites every user's remembered facts (a bad data migration)
    "rewrites memory at start": (
        "mindmate/__main__.py",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n"
        '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):  # "migrate" to a new shape\n'
        "            client.delete(key)\n"
        '            client.rpush(key, "[]")\n',
    ),
    # the usual shape of a data migration: at start, every user's facts move to a new key, which
    # the new code reads. Its own answers are as before; the live commit, rolled back onto the
    # moved memory, finds no facts where it looks (only the replay's rollback direction sees it)
    "moves facts at start": (
        (
            "mindmate/store.py",
            'return f"{prefix}memory:{user_id}"',
            'return f"{prefix}facts:{user_id}"',
        ),
        (
            "mindmate/__main__.py",
            "        claim_env_marker(client, settings.key_prefix, settings.env)\n",
            "        claim_env_marker(client, settings.key_prefix, settings.env)\n"
            '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):  # migrate: a new key\n'
            '            client.rename(key, key.replace(b"memory:", b"facts:", 1))\n',
        ),
    ),
    # a clean-up at start that deletes every user's facts
    "deletes memory at start": (
        "mindmate/__main__.py",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n"
        '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):  # "stale" facts\n'
        "            client.delete(key)\n",
    ),
    # a start that never serves (a migration stuck on a lock): the replay is cancelled meanwhile
    "hangs at start": (
        "mindmate/__main__.py",
        "    settings = prepare()\n",
        '    settings = prepare()\n    __import__("time").sleep(3600)\n',
    ),
    # a start that reads a stored fact as a number and dies quoting it (a migration's bad guess)
    "crash quoting a fact": (
        "mindmate/__main__.py",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n",
        "        claim_env_marker(client, settings.key_prefix, settings.env)\n"
        '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):  # facts as scores\n'
        "            [float(fact) for fact in client.lrange(key, 0, -1)]\n",
    ),
}


def commit_breaking(world: World, how: str, message: str) -> str:
    """A commit on main whose bot is broken as ``how`` says (a key of BREAKS); its full SHA."""
    found = BREAKS[how]
    edits: tuple[Edit, ...] = (found,) if isinstance(found[0], str) else found
    git(world.repo, "checkout", "-q", "main")
    for path, old, new in edits:
        target = world.repo / path
        text = target.read_text()
        if old not in text:
            raise RuntimeError(f"{path} no longer reads as {how!r} expects: update sandbox/breaks.py")
        target.write_text(text.replace(old, new))
        git(world.repo, "add", path)
    git(world.repo, "commit", "-q", "-m", message)
    return git(world.repo, "rev-parse", "HEAD")
