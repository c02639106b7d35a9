# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""The workspace error handler: one Slack message per lifecycle event that finally failed.

Set it in Workspace settings > Error handler > Script: f/marketing/on_failure. Windmill runs
it for every failed root job of the workspace (as the group g/error_handler) with the failed
job's path, id and error; a handle_user_event or stripe_events job that failed only for a
while does not come here, as it queued a later attempt and ended well. It never raises: a
handler that fails alerts nobody.
"""

import os
import re
from typing import Any

from f.marketing.lib.errors import MarketingError
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.service_settings import SlackSettings
from f.marketing.lib.settings import SLACK_PATH, load_resource
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.slack_message import escape
from f.marketing.lib.windmill_api import job_workspace

WATCHED = ("f/marketing/handle_user_event", "f/marketing/stripe_events")
EMAIL = re.compile(r"[^\s@<>()\"']+@[^\s@<>()\"']+")
EVENT = re.compile(r"^(user\.[a-z]+|customer\.subscription\.[a-z]+)\b")


def main(
    path: str,
    job_id: str,
    error: dict | None = None,
    workspace_id: str = "",
    is_flow: bool = False,
    started_at: str | None = None,
    alert_other_scripts: bool = False,
) -> dict:
    """Post the failure to the Slack destination of f/marketing/slack.

    Args:
        path: The failed script (Windmill fills this in).
        job_id: The failed job (Windmill fills this in).
        error: Its error, {name, message, stack} (Windmill fills this in).
        workspace_id: The workspace (Windmill fills this in).
        is_flow: Whether a flow failed (Windmill fills this in).
        started_at: When the failed job started (Windmill fills this in).
        alert_other_scripts: Also alert for scripts outside f/marketing (set it in the error
            handler's extra arguments).
    """
    log = log_to_stdout()
    if path not in WATCHED and not alert_other_scripts:
        log.info("failure of %s: not one of ours, ignored", path)
        return {"posted": False, "reason": f"{path} is not watched"}
    text, blocks = _message(path, job_id, error or {}, workspace_id)
    try:
        with job_workspace() as workspace:
            slack = load_resource(SlackSettings, None, SLACK_PATH, workspace.get, optional=True)
        if slack is None:
            return {"posted": False, "reason": f"no Slack resource at {SLACK_PATH}"}
        with SlackClient.from_settings(slack) as client:
            client.post(text, blocks)
    except MarketingError as exc:  # Slack down, the resource unreadable: say so, do not raise
        log.warning("failure alert not posted: %s", exc)
        return {"posted": False, "reason": str(exc)}
    except Exception as exc:
        log.warning("failure alert not posted: %s", type(exc).__name__)
        return {"posted": False, "reason": type(exc).__name__}
    log.info("failure alert posted for a failed %s job", path)
    return {"posted": True}


def _message(path: str, job_id: str, error: dict, workspace_id: str) -> tuple[str, list[dict]]:
    message = str(error.get("message") or error.get("name") or "no error message")
    first = EMAIL.sub("<email>", message.strip().splitlines()[0] if message.strip() else "")
    first = first[:300]
    event = EVENT.match(first)
    kind = event[1] if event else "an event"
    script = path.rsplit("/", 1)[-1]
    base = (os.environ.get("WM_BASE_URL") or "").rstrip("/")
    link = f"{base}/run/{job_id}?workspace={workspace_id}" if base else f"job {job_id}"
    text = escape(f"{script} failed for {kind}: {first}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{script} failed"[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Event*\n{escape(kind)}"},
                {"type": "mrkdwn", "text": f"*Error*\n{escape(first)}"},
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the run>" if base else link}],
        },
    ]
    return text, blocks
