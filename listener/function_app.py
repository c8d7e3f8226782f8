"""Azure Functions entry point (Python v2 model, Flex Consumption): one app object with two functions.

* `http_app_func` (made by `AsgiFunctionApp`): every HTTP route, served by the Starlette app in `webhook_listener.app`.
  Anonymous at the host: each route verifies its own HMAC signature or bearer token before acting, so no function
  key is needed. A function key would have to be read from the host after it first runs, and a new app has no
  code to run until the publish step deploys it (reading its keys then fails: Azure/azure-functions-host#5722,
  Azure/azure-cli#20892), which would make the first `pulumi up` fail.
* `health`: `GET /api/health`, anonymous so that probes need no key. A literal route outranks the catch-all, and it
  is served by the same ASGI app.
* `dispatch_promotion`: the queue trigger; it calls the same handler the local worker does.

All logic lives in the `webhook_listener` package; this file only wires it to the host.
"""

from __future__ import annotations

import azure.functions as func

from webhook_listener.app import create_app
from webhook_listener.logs import configure_logging
from webhook_listener.runtime import Runtime
from webhook_listener.settings import load_settings
from webhook_listener.worker import handle_message

# Invalid settings fail here, at indexing, so the app never runs half-configured.
settings = load_settings()
configure_logging(settings.log_level, settings.secret_values(), stream_to_stderr=False)
runtime = Runtime(settings)

asgi = create_app(settings, runtime=runtime)
app = func.AsgiFunctionApp(app=asgi, http_auth_level=func.AuthLevel.ANONYMOUS)


@app.function_name(name="health")
@app.route(route="health", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    response: func.HttpResponse = await app.middleware.handle_async(req)
    return response


@app.function_name(name="dispatch_promotion")
@app.queue_trigger(arg_name="msg", queue_name=settings.queue_name, connection=settings.queue_trigger_connection)
async def dispatch_promotion(msg: func.QueueMessage) -> None:
    await handle_message(runtime, msg.get_body().decode("utf-8"))
