"""One client per outside service, each on the shared HTTP layer (``ci_tools.http``).

Every reply is parsed into a typed value in one place (``BotInfo``, ``WebhookInfo``,
``Health``, ``Deploy``), and every failure to reach a service is a ``RemoteError``
that names it, so a command never handles a raw transport exception.
"""
