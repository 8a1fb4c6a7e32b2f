"""``ray.serve.config``: the configuration objects Serve programs import.

    from raylite.serve.config import AutoscalingConfig, HTTPOptions

    @serve.deployment(autoscaling_config=AutoscalingConfig(min_replicas=1, max_replicas=4))
    class Model: ...

    serve.start(http_options=HTTPOptions(port=8001))
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from raylite.serve._autoscaling import AutoscalingConfig
from raylite.serve._common import DeploymentConfig

__all__ = ["AutoscalingConfig", "DeploymentConfig", "HTTPOptions", "ProxyLocation"]


class ProxyLocation(str, enum.Enum):
    """Where HTTP proxies run. raylite runs one proxy in the driver's node: ``HeadOnly`` and
    ``EveryNode`` both mean that one; ``Disabled`` starts none (handles only)."""

    Disabled = "Disabled"
    HeadOnly = "HeadOnly"
    EveryNode = "EveryNode"


@dataclasses.dataclass
class HTTPOptions:
    """The HTTP proxy's options, for ``serve.start(http_options=...)``; the proxy binds
    127.0.0.1 unless ``host`` says otherwise."""

    host: str | None = None
    port: int | None = None
    root_path: str | None = None
    request_timeout_s: float | None = None
    keep_alive_timeout_s: float | None = None
    middlewares: list[Any] | None = None
    location: str | None = None
    num_cpus: float | None = None
