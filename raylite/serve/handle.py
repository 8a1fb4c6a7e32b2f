"""``ray.serve.handle``: the handles to call deployments from Python, and what calls return.

    from raylite.serve.handle import DeploymentHandle, DeploymentResponse

See ``raylite.serve._handle`` for how a call travels.
"""

from raylite.serve._handle import (DeploymentHandle, DeploymentResponse,
                                   DeploymentResponseGenerator, RayServeHandle,
                                   RayServeSyncHandle)

__all__ = ["DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator",
           "RayServeHandle", "RayServeSyncHandle"]
