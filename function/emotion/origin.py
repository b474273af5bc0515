"""On AWS the API answers only requests that came through CloudFront: CloudFront adds a secret
header to every request it sends to the API (infra/protection.py makes the secret at deploy and
gives the same value to the function); a direct call to the API's own execute-api address
lacks it and gets 403. Locally (no secret configured) every request passes."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

HEADER = "x-origin-verify"  # infra/protection.py: ORIGIN_HEADER


class OriginCheck:
    def __init__(self, app, secret: str):
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = Headers(scope=scope).get(HEADER, "").encode()
            if not hmac.compare_digest(given, self.secret):  # constant time
                detail = "Call this API through the site's address, not its own endpoint."
                response = JSONResponse({"error": "forbidden", "detail": detail}, status_code=403)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
