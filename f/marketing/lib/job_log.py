"""Log lines in a Windmill job's output: steps and statuses, never people or secrets."""

import logging
import sys
from typing import TextIO

log = logging.getLogger("f.marketing")


def log_to_stdout() -> logging.Logger:
    """Windmill shows what a job prints; one handler, however many times a job calls this."""
    log_to(sys.stdout)
    return log


def log_to(stream: TextIO) -> None:
    """Send the log lines to `stream` unless they already go somewhere: the first call wins,
    so a local command that chose stderr keeps it when the job asks for stdout."""
    if not log.handlers:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
