"""Mint an app token (HS256 JWT) for curl sessions and tests.

    python -m devstack.apptoken --app app-1a2b3c --user bob                  # user token
    python -m devstack.apptoken --app app-1a2b3c --user im-server --role admin
    python -m devstack.apptoken --app app-1a2b3c --user bob --secret <secretKey>

Without --secret the app's secretKey is read from the local stack's Secrets
Manager (the emulator of `make run`, or AWS_ENDPOINT_OVERRIDE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from chalicelib.services.auth import MAX_TOKEN_LIFETIME_S, mint_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--app", required=True, help="the appId")
    parser.add_argument("--user", required=True, help="the token's sub: a user ID, or the IM server's name")
    parser.add_argument("--role", choices=["user", "admin"], default="user")
    parser.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default 3600, at most 30 days)"
    )
    parser.add_argument("--secret", help="the app's secretKey (default: read it from the local stack)")
    parser.add_argument("--prefix", default=os.environ.get("SECRETS_PREFIX", "apns-push/local/"))
    args = parser.parse_args(argv)
    if not 0 < args.ttl <= MAX_TOKEN_LIFETIME_S:
        parser.error(
            f"--ttl must be 1..{MAX_TOKEN_LIFETIME_S} seconds: the API refuses tokens valid for over 30 days"
        )

    secret = args.secret
    if secret is None:
        import boto3

        endpoint = (
            os.environ.get("AWS_ENDPOINT_OVERRIDE")
            or f"http://127.0.0.1:{os.environ.get('AWS_EMULATOR_PORT', 5000)}"
        )
        client = boto3.client(
            "secretsmanager",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        )
        try:
            value = client.get_secret_value(SecretId=f"{args.prefix}{args.app}/app-secret-key")
        except Exception as exc:
            print(f"cannot read the secretKey of {args.app} from {endpoint}: {exc}", file=sys.stderr)
            return 1
        secret = json.loads(value["SecretString"])["secretKey"]
    print(mint_token(secret, args.app, args.user, args.role, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
