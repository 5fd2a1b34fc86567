"""What the HTTP server refuses before a model sees it, and how uploads reach the model's process.

`RequestChecks` answers a request that is too large, a JSON endpoint's body that is not JSON and an upload sent as
something else with a 4xx and one line; it lets `curl -d '{...}'` (sent as a form by default) through as the JSON it is.
LitServe hands every request to the model's process through a multiprocessing queue, which pickles it: an upload over
1 MB, spooled to disk by Starlette, cannot be pickled, so `Upload` carries the bytes instead.
"""
from __future__ import annotations

import copyreg
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from starlette.datastructures import Headers, UploadFile
from starlette.responses import JSONResponse

from tasks.serving.errors import TOO_LARGE, UNSUPPORTED, BadRequest

JSON, UPLOAD, EITHER = "json", "upload", "either"  # what an endpoint reads


@dataclass(frozen=True)
class Upload:
    """An uploaded file, as the model's process receives it."""

    filename: str
    content_type: str
    data: bytes

    @property
    def suffix(self) -> str:
        suffix = Path((self.filename or "").replace("\\", "/").rsplit("/", 1)[-1]).suffix.lower()
        return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""

    @property
    def name(self) -> str:
        """The file's name without any folder; "upload" and its suffix when it is not a plain name (such as '..')."""
        name = (self.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        return name if re.fullmatch(r"\w[\w.+-]{0,120}", name) else f"upload{self.suffix}"


def _upload_by_value(upload: UploadFile):
    upload.file.seek(0)
    return Upload, (upload.filename or "", upload.content_type or "", upload.file.read())


copyreg.pickle(UploadFile, _upload_by_value)


def split_form(form: Mapping) -> tuple[dict[str, str], list[Upload]]:
    """A parsed multipart form -> (its text fields, its files)."""
    fields, files = {}, []
    for name, value in form.multi_items():
        if isinstance(value, Upload):
            files.append(value)
        else:
            fields[name] = value
    return fields, files


def one_upload(form: Mapping, what: str, example: str) -> tuple[Upload, dict[str, str]]:
    """The single file of an upload request (and its text fields), or a one-line 400."""
    fields, files = split_form(form)
    if len(files) != 1:
        raise BadRequest(f"send exactly one {what} file (got {len(files)}), e.g. curl -F file=@{example} URL")
    if not files[0].data:
        raise BadRequest(f"the uploaded {what} file {files[0].filename!r} is empty")
    return files[0], fields


def megabytes(size: int) -> str:
    return f"{size / 1e6:g} MB"


class RequestChecks:
    """ASGI middleware over the LitServe app: size limits, JSON bodies and upload types, per endpoint.

    endpoints: path -> JSON, UPLOAD or EITHER; max_json / max_upload: the largest body of each kind, in bytes.
    """

    def __init__(self, app, *, endpoints: Mapping[str, str], max_json: int, max_upload: int):
        self.app, self.endpoints, self.max_json, self.max_upload = app, dict(endpoints), max_json, max_upload

    async def __call__(self, scope, receive, send):
        kind = self.endpoints.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            return await self.app(scope, receive, send)
        try:
            scope, body = await self.check(scope, receive, kind)
        except BadRequest as error:
            return await JSONResponse({"detail": error.message}, status_code=error.status)(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if sent:  # the body was read whole: from now on, only a disconnect can come
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def check(self, scope, receive, kind: str) -> tuple[dict, bytes]:
        """The request's scope (its content type set to JSON for a JSON body) and its whole body, or BadRequest."""
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        form = content_type == "multipart/form-data"
        if kind == UPLOAD and not form:
            raise BadRequest(f"{scope['path']} reads a file: send it as multipart/form-data, e.g. curl -F file=@FILE "
                             f"URL (got {content_type or 'no content type'})", UNSUPPORTED)
        limit = self.max_upload if form else self.max_json
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BadRequest(f"request too large: {megabytes(int(declared))}, the limit is {megabytes(limit)}", TOO_LARGE)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before sending the whole request")
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise BadRequest(f"request too large: over {megabytes(limit)}, the limit", TOO_LARGE)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if form:
            return scope, body
        body = body if body.strip() else b"{}"  # no body: every option takes its default
        try:
            json.loads(body)
        except (UnicodeDecodeError, ValueError) as error:
            raise BadRequest(f"the body is not JSON ({str(error).splitlines()[0]}): send a JSON object, e.g. "
                             f"curl -H 'Content-Type: application/json' -d '{{...}}' URL") from None
        raw = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        return {**scope, "headers": raw}, body
