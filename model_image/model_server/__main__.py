"""`python -m model_server serve | fetch | check | smoke | traffic | judge`.

serve  Serve the model in --model-dir (env MODEL_DIR) on --host/--port (env HOST/PORT); flags override the environment.
fetch  Download models:/<name>/<version> from the registry at $MLFLOW_TRACKING_URI into --dest, with serving metadata.
check  Load the model and run the warm-up (what readiness waits for) without serving; used at image build time.
smoke  POST the model's input example to --url and require predictions; the release's smoke test of the canary.
traffic  POST the input example to --url at --rps for --seconds: synthetic traffic a quiet canary is judged on.
judge  Run each canary check's PromQL pass query once; exit 0 iff every one returned a sample (a rollout analysis Job).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from model_server.judge import add_arguments as add_judge_arguments
from model_server.judge import run as run_judge
from model_server.settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_server", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the model over HTTP")
    serve.add_argument("--model-dir", type=Path, help="MLflow model directory (env MODEL_DIR, default /opt/model)")
    serve.add_argument("--host", help="address to listen on (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="server processes (env WORKERS, default 1)")

    fetch = commands.add_parser("fetch", help="fetch a registered model version from the MLflow registry")
    fetch.add_argument("--model-uri", required=True, help="models:/<name>/<version> (or models:/<name>@<alias>)")
    fetch.add_argument("--dest", required=True, type=Path, help="directory to create (must be empty or absent)")
    fetch.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: env MLFLOW_TRACKING_URI), e.g. databricks or https://..."
    )
    fetch.add_argument("--token-file", type=Path, help="file holding the registry token (a BuildKit secret mount)")
    fetch.add_argument(
        "--expect-run-id", help="fail unless the version comes from this run (default: env MODEL_RUN_ID)"
    )

    check = commands.add_parser("check", help="load and warm up the model, print what the server would serve")
    check.add_argument("--model-dir", type=Path, help="MLflow model directory (env MODEL_DIR, default /opt/model)")

    smoke = commands.add_parser("smoke", help="post the model's input example to a running server")
    smoke.add_argument("--url", required=True, help="the server's /invocations URL")
    smoke.add_argument("--model-dir", type=Path, help="MLflow model directory (env MODEL_DIR, default /opt/model)")
    smoke.add_argument("--attempts", type=int, default=10)

    traffic = commands.add_parser("traffic", help="send the model's input example at a steady rate")
    traffic.add_argument("--url", required=True, help="the canary's /invocations URL")
    traffic.add_argument("--rps", required=True, type=float, help="requests per second")
    traffic.add_argument("--seconds", required=True, type=float, help="how long to send")
    traffic.add_argument("--model-dir", type=Path, help="MLflow model directory (env MODEL_DIR, default /opt/model)")

    judge = commands.add_parser("judge", help="judge a canary: every PromQL pass query must return a sample")
    add_judge_arguments(judge)
    return parser


def _smoke(args: argparse.Namespace) -> int:
    from model_server.smoke import SmokeTestError, input_example, smoke_test

    model_dir = args.model_dir or Path(os.environ.get("MODEL_DIR", "/opt/model"))
    try:
        answer = smoke_test(args.url, input_example(model_dir), attempts=args.attempts)
    except SmokeTestError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 1
    print(f"smoke: {args.url} answered {answer[:200]}")
    return 0


def _traffic(args: argparse.Namespace) -> int:
    from model_server.smoke import SmokeTestError, input_example
    from model_server.traffic import send_traffic

    model_dir = args.model_dir or Path(os.environ.get("MODEL_DIR", "/opt/model"))
    try:
        result = send_traffic(args.url, input_example(model_dir), rps=args.rps, seconds=args.seconds)
    except (SmokeTestError, ValueError) as exc:
        print(f"traffic: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"sent": result.sent, "statuses": {str(k): v for k, v in sorted(result.statuses.items())}}))
    # The checks judge the answers; only a canary that never answered fails here.
    return 0 if result.answered else 1


def _serve(args: argparse.Namespace) -> int:
    from model_server.server import serve

    settings = load_settings(os.environ, model_dir=args.model_dir, host=args.host, port=args.port, workers=args.workers)
    return serve(settings)


def _fetch(args: argparse.Namespace) -> int:
    from model_server.fetch import FetchError, fetch_model
    from model_server.logs import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "info"))
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        print("fetch: set MLFLOW_TRACKING_URI or pass --tracking-uri", file=sys.stderr)
        return 2
    token = args.token_file.read_text().strip() if args.token_file else None
    try:
        fetched = fetch_model(
            args.model_uri,
            args.dest,
            tracking_uri=tracking_uri,
            token=token,
            expect_run_id=args.expect_run_id or os.environ.get("MODEL_RUN_ID") or None,
        )
    except FetchError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"fetched": fetched.model_uri, "dest": str(args.dest), "run_id": fetched.run_id}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from model_server.loading import ModelLoadError, load_model
    from model_server.logs import configure_logging

    settings = load_settings(os.environ, model_dir=args.model_dir)
    configure_logging(settings.log_level)
    try:
        loaded = load_model(settings)
    except ModelLoadError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 3
    summary = {
        **loaded.identity.as_dict(),
        "flavor": loaded.flavor,
        "scoring_path": loaded.scorer.path.value,
        "batching": loaded.mergeable,
        "drift_features": len(loaded.drift_reference.features) if loaded.drift_reference else 0,
        "mlflow_import_seconds": round(loaded.mlflow_import_seconds, 3),
        "load_seconds": round(loaded.load_seconds, 3),
        "warmup_seconds": round(loaded.warmup_seconds, 3),
    }
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "fetch":
            return _fetch(args)
        if args.command == "smoke":
            return _smoke(args)
        if args.command == "judge":
            return run_judge(args)
        if args.command == "traffic":
            return _traffic(args)
        return _check(args)
    except SettingsError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
