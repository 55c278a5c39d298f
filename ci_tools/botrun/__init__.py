"""Running any bot: built and started with its own commands, as Render runs it.

``commands_of(tree, service)`` reads the commands from the tree's render.yaml (or detects them);
``build(tree, commands, env)`` runs the build command in a virtualenv at the tree's ``.venv``;
``start(tree, commands, environ, telegram_api)`` runs the start command and waits until it is
ready, returning a ``RunningBot``. The Render stand-in and ``ci-tools check-bot`` run every bot
through here, never our own bot in its place.
"""

from ci_tools.botrun.building import build, default_cache
from ci_tools.botrun.commands import BotCommands, commands_of, from_blueprint
from ci_tools.botrun.running import RunningBot, start
from ci_tools.botrun.sessions import die_with_parent, stop_session

__all__ = [
    "BotCommands",
    "RunningBot",
    "build",
    "commands_of",
    "default_cache",
    "die_with_parent",
    "from_blueprint",
    "start",
    "stop_session",
]
