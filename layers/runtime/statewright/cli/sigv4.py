"""SigV4 signing of API requests with the user's AWS credentials (botocore's signer,
service ``execute-api``), for the CLI's client and the console's proxy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


class SigningError(Exception):
    """No credentials or no region to sign with; ``code`` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def region_of(hostname: str) -> str | None:
    """The region of an API Gateway host: <api-id>.execute-api.<region>.amazonaws.com."""
    labels = hostname.split(".")
    if "execute-api" in labels:
        index = labels.index("execute-api")
        if index + 1 < len(labels):
            return labels[index + 1]
    return None


class Signer:
    """Credentials and region resolved once (as the AWS CLI would); botocore refreshes
    expiring credentials (SSO, assumed roles) by itself."""

    def __init__(self, hostname: str, region: str | None = None) -> None:
        from botocore.exceptions import BotoCoreError
        from botocore.session import Session

        session = Session()
        try:
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise SigningError("no_credentials", f"cannot load AWS credentials: {exc}") from None
        if credentials is None:
            raise SigningError(
                "no_credentials",
                "no AWS credentials found to sign the request; configure them as for the AWS "
                "CLI (AWS_PROFILE, aws sso login, environment variables...)",
            )
        region = (
            region
            or region_of(hostname)
            or session.get_config_variable("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        if not region:
            raise SigningError("no_region", "cannot tell the endpoint's AWS region; set AWS_REGION")
        self.credentials: Any = credentials
        self.region = str(region)

    def sign(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` plus the SigV4 ones (Authorization, X-Amz-Date, token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError

        request = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        try:
            frozen = self.credentials.get_frozen_credentials()
        except BotoCoreError as exc:
            raise SigningError("no_credentials", f"cannot refresh AWS credentials: {exc}") from None
        SigV4Auth(frozen, "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())
