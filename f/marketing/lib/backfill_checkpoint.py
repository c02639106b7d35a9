"""How far a backfill run got, kept in the workspace: a run again on the same file resumes
where the last one stopped, and a file applied completely is not applied twice.

One state resource per file and options (f/marketing/backfill_runs/<key>), holding the rows
done, whether the run completed, and what it did so far. A dry run reads and writes none.
"""

import hashlib
from datetime import UTC, datetime

from f.marketing.lib.backfill_tally import Tally
from f.marketing.lib.windmill_api import Workspace

CHECKPOINTS = "f/marketing/backfill_runs/"


def checkpoint_path(file_digest: str, campaigns: bool) -> str:
    """The checkpoint of this file applied with these options (a hash: no email in a path)."""
    return (
        CHECKPOINTS
        + hashlib.sha256(f"{file_digest}|campaigns={campaigns}".encode()).hexdigest()[:24]
    )


class Checkpoint:
    def __init__(self, resources: Workspace, path: str, *, dry_run: bool) -> None:
        self.resources, self.path, self.dry_run = resources, path, dry_run
        stored = {} if dry_run else (resources.get(path) or {})
        self.complete = bool(stored.get("complete"))
        self.rows_done = int(stored.get("rows_done") or 0)
        self.tally = Tally.from_dict(stored.get("tally") or {})
        self._written = bool(stored)

    def save(self, rows_done: int, tally: Tally, *, complete: bool) -> None:
        if self.dry_run:
            return
        value = {"rows_done": rows_done, "complete": complete, "tally": tally.as_dict(),
                 "at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        if self._written:
            self.resources.update(self.path, value)
        else:
            self._written = True
            if not self.resources.create(self.path, value, "state"):
                self.resources.update(self.path, value)
