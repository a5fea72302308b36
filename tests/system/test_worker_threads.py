"""A Celery worker sizes its model pools like serve does: two `medai worker` processes on a
2-core machine each ran torch and ONNX Runtime at their default two threads (four busy threads
on two cores, issue 25's benchmark). `--threads` (default 1) reaches both."""

from __future__ import annotations

from helpers.platform import use_home


def test_a_worker_process_gives_its_thread_count_to_the_models(tmp_path, monkeypatch):
    import torch

    from medai.platform.jobs import queue
    from medai.services.runtime import CpuPlan, apply_thread_limits

    use_home(tmp_path)
    monkeypatch.setenv("MEDAI_DATABASE_URL", f"sqlite:///{tmp_path / 'medai.db'}")
    before = torch.get_num_threads()
    queue._worker_platform.cache_clear()
    monkeypatch.setattr(queue, "WORKER_THREADS", 1)
    try:
        apply_thread_limits(CpuPlan(1, 1, 1))  # what `medai worker` does before its tasks
        p = queue._worker_platform()
        assert p.models.threads == 1 and torch.get_num_threads() == 1
        p.stop_watching()
    finally:
        queue._worker_platform.cache_clear()
        torch.set_num_threads(before)


def test_the_worker_command_offers_threads():
    from typer.testing import CliRunner

    from medai.cli import app

    out = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--threads" in out.stdout
