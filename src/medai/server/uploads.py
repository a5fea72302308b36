"""What the job routes share: the model of a task, bounded uploads, image errors."""

from __future__ import annotations

from fastapi import Request, UploadFile

from medai.server.errors import ApiError
from medai.services.imaging import MAX_BYTES, ImageInputError, ImageRefused, ImageTooLarge
from medai.services.models import ModelUnavailable


def model_for(request: Request, task: str):
    try:
        return request.app.state.models.get(task)
    except ModelUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None



async def read_upload(file: UploadFile) -> bytes:
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ApiError(413, "too_large", f"file is larger than {MAX_BYTES:,} bytes")
    return data


def image_error(exc: ImageInputError) -> ApiError:
    code = ("image_refused" if isinstance(exc, ImageRefused) else
            "image_too_large" if isinstance(exc, ImageTooLarge) else "unusable_image")
    return ApiError(422, code, str(exc))


