"""Testing helpers for fabric users: deterministic multi-node simulations on the in-memory network.

>>> from fabric.testing import Simulation, Faults
>>> sim = Simulation(seed=7, faults=Faults(drop=0.01, jitter=0.005))   # prints "seed=7"
seed=7
>>> nodes = sim.spawn(5)
>>> sim.join_all(nodes[0])
>>> sim.run_until(sim.converged, timeout=30)
True

``OverlaySim`` runs the overlays (HyParView, client-server, static, full-mesh) at 1,000 nodes; see
docs/overlays.md. See docs/testing.md.

``fabric.testing.chaos`` (imported on its own) runs real node processes in network namespaces under
partitions, loss, kill -9, pauses, churn and clock skew; see docs/chaos.md.
"""

from ..transport.memory import Faults, MemoryNetwork, MemoryTransport
from .overlay_sim import OverlaySim
from .sim import LogRecord, SimNode, Simulation

__all__ = ["Faults", "LogRecord", "MemoryNetwork", "MemoryTransport", "OverlaySim", "SimNode", "Simulation"]
