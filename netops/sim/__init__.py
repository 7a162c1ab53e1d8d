"""A faithful 42 intra API simulator: deterministic data, real HTTP, rate limits and faults.

In-process use (tests, demos)::

    from netops.sim import SimConfig, SimServer
    with SimServer(SimConfig(port=0, backlog_scale=0.02)) as sim:
        sim.url, sim.client_id, sim.client_secret
        sim.expire_tokens(); sim.add_fault("503@/v2/campus,count=2"); sim.expected()

Out of process: `netops sim serve` and `netops.sim.control.SimControl(url)`.
"""

from netops.sim.control import SimControl
from netops.sim.faults import FaultSpecError, parse_spec
from netops.sim.server import SimConfig, SimServer

__all__ = ["FaultSpecError", "SimConfig", "SimControl", "SimServer", "parse_spec"]
