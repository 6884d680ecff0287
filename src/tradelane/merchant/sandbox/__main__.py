"""``python -m tradelane.merchant.sandbox``: run the HTTP OMS sandbox (for demos).

The signing secret comes from ``TRADELANE_OMS_SANDBOX_SECRET`` (never a command-line argument, so it
stays out of process listings); the callback API token from ``TRADELANE_OMS_SANDBOX_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys

from tradelane.merchant.sandbox.server import serve
from tradelane.merchant.sandbox.state import CallbackConfig, OmsSandboxState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradelane.merchant.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--tradelane-url", default="http://127.0.0.1:8000")
    parser.add_argument("--merchant-name", default=None, help="merchant system name, for signed webhooks")
    args = parser.parse_args(argv)
    secret = os.environ.get("TRADELANE_OMS_SANDBOX_SECRET", "")
    if not secret:
        print("set TRADELANE_OMS_SANDBOX_SECRET to the merchant system's signing secret", file=sys.stderr)
        return 2
    callback = CallbackConfig(
        tradelane_url=args.tradelane_url,
        api_token=os.environ.get("TRADELANE_OMS_SANDBOX_API_TOKEN") or None,
        merchant_name=args.merchant_name,
    )
    serve(OmsSandboxState(secret, callback=callback), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
