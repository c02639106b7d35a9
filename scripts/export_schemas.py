"""Write the JSON Schemas generated from the code: the events' and the resource types'.

    .venv/bin/python scripts/export_schemas.py          # write them
    .venv/bin/python scripts/export_schemas.py --check  # exit 1 if a committed file is stale

- f/marketing/user_events.schema.json, from the event contract, for senders in other languages;
- f/marketing/resource_types/<type>.resource-type.json, from the settings models that read the
  resources, so that the form Windmill shows asks for exactly what the code reads. Windmill's
  resource forms read plain JSON Schema: references are inlined and a union of simple types
  becomes a list of types.
"""

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from f.marketing.lib.contract import json_schema  # noqa: E402
from f.marketing.lib.routing import Routing  # noqa: E402
from f.marketing.lib.service_settings import (  # noqa: E402
    MauticSettings,
    SlackSettings,
    StripeSettings,
    TwentySettings,
)

RESOURCE_TYPES: dict[str, type[BaseModel]] = {
    "c_twenty": TwentySettings,
    "c_mautic": MauticSettings,
    "c_slack_notify": SlackSettings,
    "c_marketing_routing": Routing,
    "c_stripe": StripeSettings,
}


def resource_type(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    body = _plain(schema, definitions)
    description = body.pop("description", "")
    body.setdefault("required", [])
    return {
        "description": " ".join(description.split()),
        "schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", **body},
    }


def _plain(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_plain(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return _plain({**target, **{k: v for k, v in node.items() if k != "$ref"}}, definitions)
    node = {k: _plain(v, definitions) for k, v in node.items() if k != "title"}
    if "anyOf" in node:
        branches = node.pop("anyOf")
        kinds = [b.get("type") for b in branches]
        others = [b for b in branches if b.get("type") != "null"]
        if len(others) == 1:
            merged = {**others[0], **node}
            if len(others) < len(branches):
                merged["type"] = [others[0]["type"], "null"]
            node = merged
        elif all(isinstance(kind, str) for kind in kinds):
            node = {"type": kinds, **node}
        else:
            node["anyOf"] = branches
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(node["description"].split())
    return node


def planned() -> dict[Path, str]:
    files = {
        ROOT / "f" / "marketing" / "user_events.schema.json": json_schema(),
        **{
            ROOT / "f" / "marketing" / "resource_types" / f"{name}.resource-type.json": (
                resource_type(model)
            )
            for name, model in RESOURCE_TYPES.items()
        },
    }
    return {
        path: json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        for path, value in files.items()
    }


def main() -> int:
    stale = []
    for path, text in planned().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if "--check" not in sys.argv[1:]:
            path.write_text(text, encoding="utf-8")
    if "--check" in sys.argv[1:] and stale:
        print(f"stale: {', '.join(stale)}: run scripts/export_schemas.py")
        return 1
    print(f"wrote {', '.join(stale)}" if stale else "every schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
