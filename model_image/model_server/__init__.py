"""A fast, safe, observable HTTP server for one MLflow pyfunc model.

Speaks the MLflow scoring protocol (`/invocations`, `/ping`) byte for byte and the Open Inference Protocol (V2),
with readiness that means "the model answered", Prometheus metrics, JSON access logs and greedy micro-batching.
"""

SERVER_NAME = "model_server"
SERVER_VERSION = "1.0.0"
