"""The cutover's overlap on the real bot, against stand-ins that behave: the new instance sets the
new bot's webhook while the public URL still routes to the old instance (Render switches only
after the new one is healthy), and Telegram redelivers what a webhook refuses.

With one webhook secret per environment the old instance took the new bot's updates and answered
them as the old bot. Bound to the bot (mindmate/settings.py: bot_secret), the old instance refuses
them, and Telegram delivers them again once the new instance serves."""

from __future__ import annotations

import threading
import time

from ci_tools.pipeline.cutover import CutoverRequest, forward
from sandbox.world import SECRETS
from tests.support import context

USER = 31337


def test_messages_sent_into_the_overlap_are_answered_once_by_the_new_bot_and_never_by_the_old(world):
    service = world.services["production"]
    old = world.telegram.add_bot("mywellnesscompanion_bot")
    service.env["TELEGRAM_BOT_TOKEN"] = old.token
    ctx = context(**world.secrets("production"))
    start = world.commit("main", "main before the cutover")
    from ci_tools.pipeline.deploy import deploy

    deploy(ctx, ctx.config.env("production"), start, timeout=60, poll=0.05)
    assert old.webhook_url  # the old bot serves production
    new = world.bots["production"]
    new.webhook_url = ""  # the new bot exists, with no webhook yet
    service.switch_after = 2.0  # hold the overlap open: healthy, not yet routed
    request = CutoverRequest(
        world.commit("main", "release: the new bot"),
        world.secrets("production")["RENDER_API_KEY"],
        service.id,
        SECRETS["production"],
        timeout=60,
        deadline=20,
        poll=0.05,
    )
    done: list[object] = []
    cutover = threading.Thread(target=lambda: done.append(forward(ctx, request, new.token)), daemon=True)
    cutover.start()
    deadline = time.monotonic() + 30
    while not new.webhook_url and time.monotonic() < deadline:  # the new instance has started
        time.sleep(0.02)
    assert new.webhook_url, "the new instance never set its webhook"
    sent_in_overlap = 0
    for i in range(5):
        if service.router.target == service.instance.url and done:
            break
        world.telegram.send_user_message(new, USER, f"hello from the overlap {i}")
        sent_in_overlap += 1
    cutover.join(60)
    assert done, "the cutover did not finish"
    assert sent_in_overlap >= 3, "the overlap closed before the messages went in"
    assert world.telegram.wait_delivered(30), f"{world.telegram.held()} update(s) never taken"
    assert world.telegram.replies_to(old, USER) == []  # the old bot answered none of them
    assert len(world.telegram.replies_to(new, USER)) == sent_in_overlap  # the new one each, once
    assert world.telegram.redeliveries >= 1  # they came through Telegram's redelivery
