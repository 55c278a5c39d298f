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


# The same bad releases in the owner's bot (tests/fixtures/owner_bot: module ``bot``, with or
# without the kit lines): ``ci-tools rehearse --bot`` breaks the owner's own code, as a refactor of
# theirs would. "open webhook" needs none: the kit the owner imports is the vendored release_kit/.
OWNER_BOT: dict[str, Edit | tuple[Edit, ...]] = {
    "forgets the daily user": ("bot/__main__.py", 'f"memory:{user_id}"', 'f"facts:{user_id}"'),
    "plain text fails": (
        "bot/__main__.py",
        "    text = update.message.text\n",
        "    text = update.message.txt  # a refactor's typo\n",
    ),
    # at start, every user's memory rewritten (the bot's own memory_key names where it is)
    "rewrites memory at start": (
        "bot/__main__.py",
        "\n\ndef main() -> None:\n",
        '\n\nfor _key in db.scan_iter(match=memory_key("*")):  # "migrate" every memory to a new shape\n'
        "    db.delete(_key)\n"
        '    db.hset(_key, "name", "?")\n'
        "\n\ndef main() -> None:\n",
    ),
}


class NoBreak(Exception):
    """No bad release of that kind is known for this repository's bot."""


def _edits(found: Edit | tuple[Edit, ...]) -> tuple[Edit, ...]:
    return (found,) if isinstance(found[0], str) else found


def commit_breaking(world: World, how: str, message: str) -> str:
    """A commit on main whose bot is broken as ``how`` says (a key of BREAKS, or of OWNER_BOT for
    the owner's bot); its full SHA. NoBreak when neither fits the repository's code."""
    git(world.repo, "checkout", "-q", "main")
    for table in (BREAKS, OWNER_BOT):
        if how not in table:
            continue
        edits = _edits(table[how])
        if not all((world.repo / path).is_file() for path, _, _ in edits):
            continue
        texts = {path: (world.repo / path).read_text() for path, _, _ in edits}
        stale = [path for path, old, _ in edits if old not in texts[path]]
        if stale and table is BREAKS:
            raise RuntimeError(f"{stale[0]} no longer reads as {how!r} expects: update sandbox/breaks.py")
        if stale:  # the owner's bot, written otherwise than the fixture
            continue
        for path, old, new in edits:
            target = world.repo / path
            target.write_text(target.read_text().replace(old, new))
            git(world.repo, "add", path)
        git(world.repo, "commit", "-q", "-m", message)
        return git(world.repo, "rev-parse", "HEAD")
    raise NoBreak(f"sandbox/breaks.py knows no way to write {how!r} in this bot's code")
