"""``ray.serve.schema``: the status and configuration types Serve programs import.

    from raylite.serve.schema import LoggingConfig, ApplicationStatus

    serve.run(app, logging_config=LoggingConfig(log_level="DEBUG"))
    assert serve.status().applications["default"].status == ApplicationStatus.RUNNING
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from raylite.serve._api import ServeStatus
from raylite.serve._common import DeploymentStatus, ReplicaState

__all__ = ["ApplicationStatus", "DeploymentStatus", "EncodingType", "LoggingConfig",
           "ReplicaState", "ServeStatus"]


class ApplicationStatus(str, enum.Enum):
    """An application's status, as ``serve.status().applications[name].status`` gives it."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class EncodingType(str, enum.Enum):
    TEXT = "TEXT"
    JSON = "JSON"


@dataclasses.dataclass
class LoggingConfig:
    """Ray Serve's logging settings. raylite accepts them where Ray does
    (``@serve.deployment(logging_config=...)``, ``serve.run(..., logging_config=...)``);
    replicas' output goes to the driver's terminal, as any raylite worker's does."""

    encoding: str | EncodingType | None = None
    log_level: int | str = "INFO"
    logs_dir: str | None = None
    enable_access_log: bool = True
    additional_log_standard_attrs: list[Any] = dataclasses.field(default_factory=list)
