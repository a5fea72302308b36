"""Shared by the tests of several files (moved from system/test_platform_celery.py)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

BROKERS = {"redis": ("127.0.0.1", 6379), "rabbitmq": ("127.0.0.1", 5672)}


def broker_url(kind: str, vhost_tag: str) -> str:
    host, port = BROKERS[kind]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        pytest.skip(f"{kind} not reachable on {host}:{port}")
    if kind == "redis":
        return f"redis://{host}:{port}/{hash(vhost_tag) % 14 + 1}"
    return f"amqp://guest:guest@{host}:{port}//"


def _purge(url: str) -> None:
    from medai.platform.jobs.queue import celery_app

    celery_app(url).control.purge()


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "worker", "--queues", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
