"""Benchmark: what holding every stand-in exchange to the published descriptions costs.

1. Loading the three descriptions (Render's OpenAPI with openapi-core, GitHub's cut,
   the Bot API's api.json), in a fresh interpreter as each test worker pays it; the best
   of --loads. Target: under 2 s in total.
2. The same calls against the stand-ins with the contract layer on and off: a deploy
   read from Render, a repository read from GitHub, getWebhookInfo from Telegram.
   Printed as seconds a call and as the ratio on/off.

    python bench/contracts.py [--calls 200] [--loads 3] [--smoke]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import _smoke  # noqa: E402
from sandbox.github import FakeGitHub  # noqa: E402
from sandbox.render import FakeRender  # noqa: E402
from sandbox.telegram import FakeTelegram  # noqa: E402

LOAD = """
import time
started = time.perf_counter()
from sandbox import contract
for c in (contract.RENDER, contract.GITHUB, contract.TELEGRAM):
    c.load()
print(time.perf_counter() - started)
"""


def load_seconds() -> float:
    done = subprocess.run([sys.executable, "-c", LOAD], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout)


def timed(urls: list[tuple[str, dict[str, str]]], calls: int) -> float:
    with httpx.Client() as client:
        started = time.perf_counter()
        for index in range(calls):
            url, headers = urls[index % len(urls)]
            client.get(url, headers=headers).raise_for_status()
        return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--loads", type=int, default=3, help="fresh interpreters loading the descriptions")
    args = _smoke.parse(parser, calls=10, loads=1)
    loads = [load_seconds() for _ in range(args.loads)]
    with FakeRender(step=0.01) as render, FakeGitHub() as github, FakeTelegram() as telegram:
        service = render.add_service("mindmate-prod", "main", {})
        render.fault(service, "a" * 40, build_failed=True)
        deploy = render._start_deploy(service, "a" * 40, trigger="api")
        bot = telegram.add_bot("mindmate_companion_bot")
        urls = [
            (
                f"{render.url}/v1/services/{service.id}/deploys/{deploy['id']}",
                {"Authorization": f"Bearer {render.api_key}"},
            ),
            (
                f"{github.url}/repos/mindmate/mindmate-release",
                {"Authorization": f"Bearer {github.token}"},
            ),
            (f"{telegram.url}/bot{bot.token}/getWebhookInfo", {}),
        ]
        timed(urls, 30)  # warm: the descriptions load once per process
        on = timed(urls, args.calls)
        servers = (render, github, telegram)
        kept = [type(s).contract for s in servers]
        for server in servers:
            server.contract = None
        off = timed(urls, args.calls)
        for server, contract in zip(servers, kept, strict=True):
            server.contract = contract
    print("contracts benchmark: Render deploy, GitHub repository, Telegram getWebhookInfo, in turn")
    print(f"  loading the three descriptions  {min(loads):6.3f} s   (target < 2 s)")
    print(f"  a call, layer on                {on * 1000:6.2f} ms")
    print(f"  a call, layer off               {off * 1000:6.2f} ms")
    print(f"  ratio on/off                    {on / off:6.2f}")


if __name__ == "__main__":
    main()
