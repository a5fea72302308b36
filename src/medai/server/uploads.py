"""What the job routes share: the model of a task, bounded uploads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, UploadFile

from medai.server.errors import ApiError
from medai.services.imaging import MAX_BYTES


def model_for(request: Request, task: str):
    """The task's predictor; a model that cannot be loaded is ``ModelUnavailable`` (503)."""
    return request.app.state.models.get(task)


def no_empty(*names: str) -> Callable[[Request], Awaitable[None]]:
    """Dependency of a form route: ``names`` (fields whose schema admits no empty value: an
    enum, a pattern) sent empty are refused 422. FastAPI reads an empty form value as an
    absent one, so ``lang=`` silently became the default although the document allows only
    ``en`` and ``tr``; leaving the field out still gives the default."""

    async def check(request: Request) -> None:
        form = await request.form()  # parsed once: the route's own fields read the same
        for name in names:
            if "" in form.getlist(name):
                raise ApiError(
                    422,
                    "invalid",
                    f"{name}: an empty value is not allowed (leave the field out for its default)",
                    errors=[{"loc": ["body", name], "msg": "empty value", "type": "empty"}],
                )

    return check


async def read_upload(file: UploadFile) -> bytes:
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ApiError(413, "too_large", f"file is larger than {MAX_BYTES:,} bytes")
    return data
