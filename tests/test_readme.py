"""The README is what an operator follows: its links, the sections the Windmill forms point
at, and the counts it states hold for the code as it is."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENTRY_SCRIPTS = sorted(p.stem for p in (ROOT / "f" / "marketing").glob("*.py"))
NUMBERS = {"four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def headings() -> list[str]:
    inside_code, found = False, []
    for line in README.splitlines():
        if line.startswith("```"):
            inside_code = not inside_code
        elif not inside_code and (match := re.match(r"#{1,4} (.+)", line)):
            found.append(match[1].strip())
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_link_inside_the_readme_reaches_a_heading():
    anchors = {slug(h) for h in headings()}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links, "the README links its sections"
    assert sorted(links - anchors) == []


def test_each_entry_script_s_windmill_description_names_a_readme_section():
    for name in ENTRY_SCRIPTS:
        meta = (ROOT / "f" / "marketing" / f"{name}.script.yaml").read_text(encoding="utf-8")
        named = re.search(r"See the README, section \"([^\"]+)\"", " ".join(meta.split()))
        assert named, f"{name}.script.yaml does not point at the README"
        assert named[1] in headings(), f"{name} points at a section the README lacks"


def test_the_go_live_checklist_is_numbered_in_order_before_the_reference():
    steps = [int(m) for m in re.findall(r"^### (\d+)\. ", README, flags=re.M)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 12
    assert README.index("## Go live") < README.index("# Reference") < README.index("# Internals")


def test_the_counts_it_states_are_the_code_s():
    types = len(list((ROOT / "f" / "marketing" / "resource_types").glob("*.resource-type.json")))
    jobs = len(ENTRY_SCRIPTS)
    for word in re.findall(r"\b(four|five|six|seven) resource types\b", README):
        assert NUMBERS[word] == types, f"'{word} resource types': there are {types}"
    for word in re.findall(
        r"\b(four|five|six|seven|eight) jobs a person, a schedule or a webhook runs", README
    ):
        assert NUMBERS[word] == jobs
    example = json.loads((ROOT / "scripts/examples/routing.resource.json").read_text())
    assert "complete example" not in README or set(example["value"]) >= {
        "segments", "campaigns", "slack_rules", "fields", "stripe", "rate_limits", "retries"
    }  # fmt: skip


def test_the_routing_it_shows_is_one_the_jobs_accept():
    from f.marketing.lib.routing import Routing

    shown = README[README.index("Routing, with every key") :]
    start = shown.index("```json\n") + len("```json\n")
    block = shown[start : shown.index("\n```", start)]
    routing = Routing.model_validate(json.loads(block))
    assert routing.rate_limits.twenty_limit_per_minute == 100
