"""The Render stand-in routes as Render documents: the old instance drains after the switch, and
a running instance that fails its health checks drops out of routing until it passes again."""

from __future__ import annotations

import json
import time

import httpx

from ci_tools.__main__ import main
from tests.support import use

FAST = ("--timeout", "30", "--poll", "0.05")
USER = 424242


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_old_instance_drains_then_stops(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    world.render.drain_seconds = 1.0
    assert main(["deploy", "production", "--commit", world.commit("main", "one"), *FAST]) == 0
    old = service.instance
    assert main(["deploy", "production", "--commit", world.commit("main", "two"), *FAST]) == 0
    assert service.instance is not old and old in service.draining
    assert httpx.get(old.url + "/healthz", timeout=5).status_code == 200  # still finishing its requests
    assert wait_until(lambda: old not in service.draining)

    def refused() -> bool:
        try:
            httpx.get(old.url + "/healthz", timeout=1)
        except httpx.HTTPError:
            return True
        return False

    assert wait_until(refused)  # SIGTERM: gone


def test_an_unhealthy_instance_leaves_routing_and_its_updates_are_delivered_once_it_is_back(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    service, bot, server = world.services["production"], world.bots["production"], world.redis["production"]
    world.render.unroute_after = 0.3
    assert main(["deploy", "production", "--commit", world.commit("main", "live"), *FAST]) == 0
    server.stop()  # Redis goes away: /healthz answers 503
    assert wait_until(lambda: service.router.unrouted)
    answer = httpx.get(service.router.url + "/healthz", timeout=5)
    assert answer.status_code == 503 and answer.json() == {"message": "no healthy instance"}  # the router's
    events = [e for e in service.events if e["type"] == "server_failed"]
    assert events and "503" in events[0]["details"]["reason"]["unhealthy"]
    for i in range(3):
        world.telegram.send_user_message(bot, USER, f"while out of routing {i}")
    assert bot.pending_update_count == 3
    server.start()
    assert wait_until(lambda: not service.router.unrouted)  # passes again: back in routing
    assert world.telegram.wait_delivered(30), f"{world.telegram.held()} update(s) never taken"
    stored = server.client(decode_responses=True).lrange(f"prod:user:{USER}:history", 0, -1)
    assert [json.loads(entry)["text"] for entry in stored] == [f"while out of routing {i}" for i in range(3)]
