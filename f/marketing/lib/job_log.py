"""Log lines in a Windmill job's output: steps and statuses, never people or secrets."""

import logging
import sys

log = logging.getLogger("f.marketing")


def log_to_stdout() -> logging.Logger:
    """Windmill shows what a job prints; one handler, however many times a job calls this."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log
