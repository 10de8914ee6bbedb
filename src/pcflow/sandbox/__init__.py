"""The sandbox: the MPC stack (Blob Storage, STAC API, SAS tokens, ...) on 127.0.0.1.

    from pcflow.sandbox import Sandbox
    sb = Sandbox(".sandbox", base_port=10000)
    sb.up()            # idempotent; seeds demo data if absent
    os.environ.update(sb.env())
    sb.down()

The same from a shell: `pcflow sandbox up|down|status|env`.
"""

from pcflow.sandbox.core import (
    BASE_PORT_ENV,
    DEFAULT_BASE_PORT,
    STATE_DIR_ENV,
    Sandbox,
    ServiceStatus,
    default_base_port,
    default_state_dir,
)
from pcflow.sandbox.process import SandboxError
from pcflow.sandbox.services import DEFAULT_SERVICES, REGISTRY, ServiceSpec, register

__all__ = [
    "BASE_PORT_ENV",
    "DEFAULT_BASE_PORT",
    "DEFAULT_SERVICES",
    "REGISTRY",
    "STATE_DIR_ENV",
    "Sandbox",
    "SandboxError",
    "ServiceSpec",
    "ServiceStatus",
    "default_base_port",
    "default_state_dir",
    "register",
]
