"""A minimal asyncio web app doing two-factor enrolment and verification (Starlette).

Run it (``pip install 'mfa_core[starlette]'`` brings Starlette and uvicorn; any ASGI server
will do; from the repository root)::

    MFA_SQLITE=mfa-example.sqlite3 uvicorn --factory async_app:create_app --app-dir examples
    MFA_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn --factory async_app:create_app --app-dir examples

Endpoints (JSON in, JSON out; a real host puts these behind its own login and session):

* ``POST /enrol``   ``{"user": "alice"}`` -> ``{"credential_id", "uri", "secret"}``
  (show ``uri`` as a QR code);
* ``POST /confirm`` ``{"user", "credential_id", "code"}`` -> ``{"accepted", "message"}``;
* ``POST /verify``  ``{"user", "code"}`` -> ``{"accepted", "message"}``, and HTTP 429 with
  ``Retry-After`` while the user is throttled.

Storage: Redis at ``MFA_REDIS_URL`` (:class:`~mfa_core.aio.redis.AsyncRedisStore`, keys
under ``MFA_REDIS_PREFIX``, default ``mfa:``), else the SQLite file named by ``MFA_SQLITE``
(each call in a worker thread, through :class:`~mfa_core.aio.AsyncStoreAdapter`), else
memory. The sealing key is
made at start-up, so stored keys are unreadable after a restart: a real host loads its
sealing keys from its secret manager.
"""

from __future__ import annotations

import math
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mfa_core.aio import AsyncMemoryStore, AsyncMFAService, AsyncStoreAdapter
from mfa_core.errors import MFAError
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig, VerifyReason
from mfa_core.stores import SQLiteStore


def _default_store() -> Any:
    redis_url = os.environ.get("MFA_REDIS_URL")
    if redis_url:
        from mfa_core.aio.redis import AsyncRedisStore  # noqa: PLC0415 - the redis extra

        return AsyncRedisStore.from_url(
            redis_url, prefix=os.environ.get("MFA_REDIS_PREFIX", "mfa:")
        )
    path = os.environ.get("MFA_SQLITE")
    return AsyncMemoryStore() if not path else AsyncStoreAdapter(SQLiteStore(path))


def create_app(store: Any = None, service: AsyncMFAService | None = None) -> Starlette:
    """Build the app around ``service`` (or an AsyncMFAService over ``store``)."""
    if service is None:
        store = _default_store() if store is None else store
        sealer = AESGCMSealer.generate()
        service = AsyncMFAService(store, store, sealer, config=ServiceConfig(issuer="Example"))
    mfa = service

    async def body(request: Request) -> dict[str, Any]:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    async def enrol(request: Request) -> JSONResponse:
        data = await body(request)
        enrolment = await mfa.begin_enrolment(data.get("user"))
        return JSONResponse(
            {
                "credential_id": enrolment.credential_id,
                "uri": enrolment.uri,
                "secret": enrolment.secret,
                "expires_at": enrolment.expires_at,
            }
        )

    async def confirm(request: Request) -> JSONResponse:
        data = await body(request)
        result = await mfa.confirm_enrolment(
            data.get("user"), data.get("credential_id"), data.get("code")
        )
        return JSONResponse({"accepted": result.accepted, "message": result.user_message})

    async def verify(request: Request) -> JSONResponse:
        data = await body(request)
        result = await mfa.verify(data.get("user"), data.get("code"))
        payload = {"accepted": result.accepted, "message": result.user_message}
        if result.reason in (VerifyReason.THROTTLED, VerifyReason.LOCKED):
            wait = result.retry_after
            headers = {} if wait is None else {"Retry-After": str(math.ceil(wait))}
            return JSONResponse(payload, status_code=429, headers=headers)
        return JSONResponse(payload)

    async def refuse(request: Request, exc: Exception) -> JSONResponse:
        code = exc.code.value if isinstance(exc, MFAError) else "invalid_request"
        return JSONResponse({"error": code}, status_code=400)

    return Starlette(
        routes=[
            Route("/enrol", enrol, methods=["POST"]),
            Route("/confirm", confirm, methods=["POST"]),
            Route("/verify", verify, methods=["POST"]),
        ],
        exception_handlers={MFAError: refuse, ValueError: refuse},
    )
