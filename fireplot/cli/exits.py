"""The exit codes of ``fireplot``, and ending the process quickly once all is saved.

0 success; 1 runtime failure (Kafka unreachable, a write failed); 2 bad usage
or configuration; 3 input had rejected lines (``parse --check``); 4 a site is
silent (``health``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_REJECTS = 0, 1, 2, 3
EXIT_SILENT = 4  # `fireplot health`: at least one site is silent


def quick_exit(code: int) -> NoReturn:
    """End the process now that everything is acknowledged, saved and closed.

    Tearing down every module and object of a process that loaded pyarrow and
    kafka-python takes ~0.1 s, a tenth of shipping a million lines. Skipping
    it loses nothing: the shipper survives kill -9 at any moment
    (tests/test_shipper_kill.py), and this runs only after Kafka acknowledged
    everything and the registry was saved; logs and standard streams are
    flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
