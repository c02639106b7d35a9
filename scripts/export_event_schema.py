"""Write f/marketing/user_events.schema.json, the JSON Schema of the three event bodies.

Generated from the pydantic contract (f/marketing/contract.py), for senders in other languages.

    python scripts/export_event_schema.py          # write it
    python scripts/export_event_schema.py --check  # exit 1 if the committed file is stale
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from f.marketing.contract import json_schema  # noqa: E402

TARGET = ROOT / "f" / "marketing" / "user_events.schema.json"


def main() -> int:
    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run scripts/export_event_schema.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
