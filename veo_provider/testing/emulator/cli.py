"""The emulator's command line: ``python -m veo_provider.testing.emulator --port 8089``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from veo_provider.testing.emulator.app import create_app
from veo_provider.testing.emulator.state import EmulatorConfig

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m veo_provider.testing.emulator",
        description="Offline emulator of the AceData Cloud Veo API (with fault injection).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", action="append", help="accepted bearer token (repeatable; default: test-token)")
    parser.add_argument("--generation-seconds", type=float, default=3.0)
    parser.add_argument("--pending-fraction", type=float, default=0.2)
    parser.add_argument("--public-url", default=None, help="base of video_url (default: the request's)")
    parser.add_argument("--strict-video-ids", action="store_true")
    parser.add_argument("--callback-retries", type=int, default=0)
    parser.add_argument("--faults", default="{}", help="initial faults as JSON, e.g. '{\"rate_limit\": 2}'")
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m veo_provider.testing.emulator``: serve until killed."""
    args = build_parser().parse_args(argv)

    import uvicorn

    config = EmulatorConfig(
        token=args.token or "test-token",
        generation_seconds=args.generation_seconds,
        pending_fraction=args.pending_fraction,
        public_url=args.public_url,
        strict_video_ids=args.strict_video_ids,
        callback_retries=args.callback_retries,
        faults=json.loads(args.faults),
        host=args.host,
        port=args.port,
    )
    print(f"Veo API emulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
