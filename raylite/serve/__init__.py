"""raylite.serve: deployments behind one HTTP proxy, as in Ray Serve (the book's 1.x API and 2.x).

    from raylite import serve

    serve.start()

    @serve.deployment
    def model(request):
        return {"echo": request.query_params["query"]}

    model.deploy()          # GET http://127.0.0.1:8000/model?query=hi  ->  {"echo": "hi"}

Pieces: a controller actor owns deployments and their replica actors (``_controller``); replicas
run the user's function or class (``_replica``); one uvicorn proxy in the driver routes HTTP
requests by longest route prefix to the least loaded replica (``_proxy``); handles call
deployments from Python (``_handle``); ``@serve.batch`` groups calls (``_batching``).
fastapi, starlette and uvicorn are imported only when Serve starts or a request arrives.
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
    RayServeHandle,
    RayServeSyncHandle,
)
from raylite.serve._replica import ReplicaContext, get_replica_context

__all__ = [
    "Application", "Deployment", "DeploymentHandle", "DeploymentResponse", "RayServeHandle",
    "RayServeSyncHandle", "ReplicaContext", "ServeStatus", "batch", "delete", "deployment",
    "get_app_handle", "get_deployment", "get_deployment_handle", "get_replica_context", "ingress",
    "list_deployments", "run", "shutdown", "start", "status",
]
