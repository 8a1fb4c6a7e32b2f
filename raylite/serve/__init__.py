"""raylite.serve: deployments behind one HTTP proxy, as in Ray Serve (the book's 1.x API and 2.x).

    from raylite import serve

    serve.start()

    @serve.deployment
    def model(request):
        return {"echo": request.query_params["query"]}

    model.deploy()          # GET http://127.0.0.1:8000/model?query=hi  ->  {"echo": "hi"}

Pieces: a controller actor owns deployments and their replica actors, replaces replicas that
die or fail ``check_health()``, autoscales between ``min_replicas`` and ``max_replicas`` on the
requests in flight and drains replicas before stopping them (``_controller``, ``_autoscaling``);
replicas run the user's function or class (``_replica``) and turn return values into responses
(``_http``), streamed chunk by chunk when they are a StreamingResponse or a generator
(``_streaming``); one uvicorn proxy in the driver routes HTTP requests by longest route prefix
to the least loaded replica, queues or answers 503 when all are busy, and retries a request once
when its replica dies (``_proxy``); handles call deployments from Python (``_handle``);
``@serve.batch`` groups calls (``_batching``). fastapi, starlette and uvicorn are imported only
when Serve starts or a request arrives.
"""

from __future__ import annotations

from raylite.serve._api import (
    ServeStatus,
    delete,
    get_app_handle,
    get_deployment,
    get_deployment_handle,
    list_deployments,
    run,
    shutdown,
    start,
    status,
)
from raylite.serve._batching import batch
from raylite.serve._deployment import Application, Deployment, deployment, ingress
from raylite.serve._handle import (
    DeploymentHandle,
    DeploymentResponse,
    DeploymentResponseGenerator,
    RayServeHandle,
    RayServeSyncHandle,
)
from raylite.serve._replica import ReplicaContext, get_replica_context

__all__ = [
    "Application", "Deployment", "DeploymentHandle", "DeploymentResponse",
    "DeploymentResponseGenerator", "RayServeHandle",
    "RayServeSyncHandle", "ReplicaContext", "ServeStatus", "batch", "delete", "deployment",
    "get_app_handle", "get_deployment", "get_deployment_handle", "get_replica_context", "ingress",
    "list_deployments", "run", "shutdown", "start", "status",
]
