"""Hostname callable for the distributed test: tells the two Celery workers on one machine apart."""

import os
import socket


def hostname() -> str:
    return os.environ.get("SEAM_WORKER_NAME") or socket.getfqdn()
