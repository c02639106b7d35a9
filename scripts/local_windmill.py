"""The local side of a Windmill job: the workspace's resources, served from files.

`wmill` serves resources from WM_MOCKED_API_FILE in a local run (Windmill's own local-development
path); this builds that file from scripts/credentials.local.json and the routing, and turns a
file that cannot be used into one line for the person at the terminal.
"""

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402

from f.marketing.lib.errors import ConfigError  # noqa: E402
from f.marketing.lib.job_log import log, log_to  # noqa: E402
from f.marketing.lib.service_settings import (  # noqa: E402
    MauticSettings,
    SlackSettings,
    StripeSettings,
    TwentySettings,
)
from f.marketing.lib.settings import parse_resource  # noqa: E402

EXAMPLES = ROOT / "scripts" / "examples"
CREDENTIALS = ROOT / "scripts" / "credentials.local.json"
ROUTING = EXAMPLES / "routing.resource.json"
# What a credentials file may hold, each checked as its resource type would be in Windmill.
RESOURCE_MODELS: dict[str, type[BaseModel]] = {
    "f/marketing/twenty": TwentySettings,
    "f/marketing/mautic": MauticSettings,
    "f/marketing/slack": SlackSettings,
    "f/marketing/stripe": StripeSettings,
}
PLACEHOLDER = re.compile(r"<[^<>]+>|\.example\.com")  # as in credentials.example.json


class SetupProblem(Exception):
    """A local file that cannot be used; the message is the one line the user sees."""


def given_path(argument: str) -> Path:
    """A path typed on the command line, from the folder it was typed in (the wrappers do not
    change folder), shown in full in messages."""
    return Path(argument).expanduser().absolute()


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except IsADirectoryError:
        raise SetupProblem(f"the {what} {path} is a folder, not a file") from None
    except FileNotFoundError:
        raise SetupProblem(f"no {what} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupProblem(f"cannot read the {what} {path}: {exc.__class__.__name__}") from None
    except ValueError as exc:
        raise SetupProblem(f"the {what} {path} is not valid JSON ({exc})") from None


def read_credentials(path: Path) -> dict[str, Any]:
    """The credentials file: resources by path, with every example placeholder replaced and
    each one valid for its resource type, before anything calls a service."""
    value = read_json(path, "credentials file")
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise SetupProblem(
            f"{path} must be a JSON object of resources by path, like credentials.example.json"
        )
    unknown = sorted(set(value) - set(RESOURCE_MODELS))
    if unknown:
        raise SetupProblem(
            f"{path}: unknown resource {unknown[0]}; use {', '.join(RESOURCE_MODELS)}"
        )
    for resource, fields in value.items():
        for name, field in fields.items():
            if isinstance(field, str) and PLACEHOLDER.search(field):
                raise SetupProblem(
                    f"{path}: {resource} {name} still holds the example's placeholder; fill it in"
                )
        try:
            parse_resource(RESOURCE_MODELS[resource], resource, fields)
        except ConfigError as exc:
            raise SetupProblem(f"{path}: {exc}") from None
    return value


def read_routing(path: Path) -> dict[str, Any]:
    spec = read_json(path, "routing")
    if not isinstance(spec, dict) or not isinstance(spec.get("value"), dict):
        raise SetupProblem(f'{path} must hold a resource: {{"value": {{...routing...}}}}')
    return {"f/marketing/routing": spec["value"]}


@contextmanager
def mocked_workspace(resources: dict[str, Any], logs: TextIO | None = None) -> Iterator[None]:
    """Serve these resources to the job through WM_MOCKED_API_FILE, as a local run does, with
    the job's log lines on `logs` (stderr unless the log is the command's output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as mock:
        json.dump({"resources": resources, "variables": {}}, mock)
    os.environ["WM_MOCKED_API_FILE"] = mock.name
    os.environ.setdefault("WM_WORKSPACE", "local")
    kept, log.handlers = log.handlers, []  # this command chooses where its log lines go
    log_to(logs or sys.stderr)
    try:
        yield
    finally:
        log.handlers = kept
        os.unlink(mock.name)
