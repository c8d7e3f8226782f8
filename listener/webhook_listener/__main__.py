"""Run the listener locally (settings from `LISTENER_*` environment variables).

python -m webhook_listener serve --host 127.0.0.1 --port 7071     # HTTP + queue worker in one process
python -m webhook_listener serve --port 7071 --http-only           # HTTP side only
python -m webhook_listener worker                                  # queue worker only
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from webhook_listener.logs import configure_logging, get_logger, log_event
from webhook_listener.settings import ListenerSettings, load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7071
_log = get_logger("cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webhook_listener", description="Run the listener locally.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the webhook routes (and, unless --http-only, the queue worker)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to bind (default {DEFAULT_PORT})")
    serve.add_argument("--http-only", action="store_true", help="do not run the queue worker in this process")
    commands.add_parser("worker", help="run only the queue worker")
    return parser


def _serve(settings: ListenerSettings, host: str, port: int, *, with_worker: bool) -> None:
    import uvicorn  # a local-serving dependency only: in Azure the Functions host serves the ASGI app

    from webhook_listener.app import create_app

    app = create_app(settings, with_worker=with_worker)
    log_event(_log, logging.INFO, "serving", host=host, port=port, worker=with_worker)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on", server_header=False)


async def _worker(settings: ListenerSettings) -> None:
    from webhook_listener.runtime import Runtime
    from webhook_listener.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = Runtime(settings)
    try:
        await run_worker(runtime, stop)
    finally:
        await runtime.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        # Field names and messages only: hide_input_in_errors keeps secret values out of the text.
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secret_values(), stream_to_stderr=True)
    if args.command == "serve":
        _serve(settings, args.host, args.port, with_worker=not args.http_only)
    else:
        asyncio.run(_worker(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
