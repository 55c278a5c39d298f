"""The operations this project calls, per provider: what the drift watch compares.

Render and GitHub operations are ``"METHOD /path"`` exactly as their OpenAPI descriptions
spell the path (Render's paths carry no ``/v1``: that is its server's base). Telegram's are
Bot API method names. ``tests/contracts`` checks that the stand-ins serve nothing beyond
these and that every one exists in the vendored description.
"""

from __future__ import annotations

from typing import Final

RENDER: Final = (
    "GET /services",
    "GET /services/{serviceId}",
    "GET /services/{serviceId}/deploys",
    "POST /services/{serviceId}/deploys",
    "GET /services/{serviceId}/deploys/{deployId}",
    "POST /services/{serviceId}/deploys/{deployId}/cancel",
    "GET /services/{serviceId}/events",
    "POST /services/{serviceId}/rollback",
    "GET /services/{serviceId}/env-vars",
    "PUT /services/{serviceId}/env-vars",
    "GET /services/{serviceId}/env-vars/{envVarKey}",
    "PUT /services/{serviceId}/env-vars/{envVarKey}",
    "DELETE /services/{serviceId}/env-vars/{envVarKey}",
    "GET /key-value",
    "GET /key-value/{keyValueId}",
    "PATCH /key-value/{keyValueId}",
    "GET /key-value/{keyValueId}/connection-info",
    "GET /blueprints",
    "GET /blueprints/{blueprintId}/syncs",
)

GITHUB: Final = (
    "GET /repos/{owner}/{repo}",
    "PATCH /repos/{owner}/{repo}",
    "GET /repos/{owner}/{repo}/pulls",
    "POST /repos/{owner}/{repo}/pulls",
    "GET /repos/{owner}/{repo}/environments",
    "GET /repos/{owner}/{repo}/environments/{environment_name}",
    "PUT /repos/{owner}/{repo}/environments/{environment_name}",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies",
    "POST /repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies",
    "DELETE /repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
    "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "DELETE /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "GET /repos/{owner}/{repo}/actions/secrets",
    "GET /repos/{owner}/{repo}/actions/artifacts",
    "GET /repos/{owner}/{repo}/rulesets",
    "POST /repos/{owner}/{repo}/rulesets",
    "GET /repos/{owner}/{repo}/rulesets/{ruleset_id}",
    "PUT /repos/{owner}/{repo}/rulesets/{ruleset_id}",
    "GET /repos/{owner}/{repo}/actions/permissions/workflow",
    "PUT /repos/{owner}/{repo}/actions/permissions/workflow",
    "GET /users/{username}",
    "GET /repos/{owner}/{repo}/git/ref/{ref}",
    "POST /repos/{owner}/{repo}/git/refs",
    "GET /repos/{owner}/{repo}/actions/secrets/public-key",
    "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "DELETE /repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "GET /repos/{owner}/{repo}/actions/variables/{name}",
    "POST /repos/{owner}/{repo}/actions/variables",
    "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
    "DELETE /repos/{owner}/{repo}/actions/variables/{name}",  # ci-tools hold --off
    "GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls",
    "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",  # scheduler.yml
)

# ci-tools calls getMe, getWebhookInfo, sendMessage and deleteWebhook (cutover --back); the
# reference bot (python-telegram-bot) setWebhook. getUpdates nobody calls: the stand-in answers it
# with the 409 a webhook causes, which is what anyone who tries polling meets.
TELEGRAM: Final = ("getMe", "getWebhookInfo", "sendMessage", "setWebhook", "deleteWebhook", "getUpdates")

# What Telegram sends the bot's webhook (the stand-in's deliveries are checked as this type).
TELEGRAM_TYPES: Final = ("Update",)

USED: Final = {"render": RENDER, "github": GITHUB, "telegram": TELEGRAM}
