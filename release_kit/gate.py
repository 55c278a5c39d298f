"""Who gets the bot: the signpost rules, applied before any handler runs.

- ``MOVED_TO`` set: the bot has moved; every update is answered with ``https://t.me/<MOVED_TO>``.
- ``TESTER_IDS`` set (staging): only those users and the probe user get the bot; anyone else gets
  ``https://t.me/<PRODUCTION_BOT>`` once per message, and nothing about them is stored.

Both are answered by the kit, so a staging bot never writes a stranger's memory whatever its
handlers do.
"""

from __future__ import annotations

from telegram import Update

from release_kit.config import KitConfig


def signpost(config: KitConfig, update: Update) -> str | None:
    """The link this update is answered with instead of the handlers; None: the handlers run."""
    if config.moved_to:
        return f"https://t.me/{config.moved_to}"
    if config.tester_ids is None:
        return None
    user = update.effective_user
    if user is not None and (user.id in config.tester_ids or user.id == config.probe_user_id):
        return None
    return f"https://t.me/{config.production_bot}"
