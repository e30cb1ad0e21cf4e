"""Fault injection on real processes: test hosts in network namespaces, partitions, loss, pauses, churn, soak.

* :class:`Cluster` -- N hosts (``python -m fabric.testing.chaos.host``: one fabric Node + a workload client
  each) on a :class:`NamespaceNetwork` (one network namespace per host on a private bridge, nftables
  faults) or a :class:`LoopbackNetwork` (127.0.0.x; partitions and loss injected by each host's transport). Faults: ``partition`` (also
  one-way), ``loss``, netem where the kernel has it, ``kill`` (-9), ``restart`` (same identity, ports and
  data dir; optionally with a skewed clock), ``pause``/``resume`` (SIGSTOP/SIGCONT).
* :mod:`.history` / :mod:`.checkers` -- the JSON-lines histories every host writes and pure checkers over
  them (lost acknowledged operations, duplicates, order per lane, availability; a registry for more).
* :mod:`.scenarios` -- scenarios (a)-(f) with reports; ``python -m fabric.testing.chaos`` runs them.

See docs/chaos.md.
"""

from .checkers import (
    CHECKERS,
    availability,
    delivered_fraction,
    duplicates,
    lost_acknowledged,
    order_violations,
    register_checker,
    run_checkers,
)
from .cluster import Cluster, ClusterError, HostProcess, default_network
from .history import Event, HistoryWriter, Receipt, load_events, load_receipts
from .net import ChaosNetError, LoopbackNetwork, NamespaceNetwork, Network, namespaces_possible

__all__ = [
    "CHECKERS",
    "ChaosNetError",
    "Cluster",
    "ClusterError",
    "Event",
    "HistoryWriter",
    "HostProcess",
    "LoopbackNetwork",
    "NamespaceNetwork",
    "Network",
    "Receipt",
    "availability",
    "default_network",
    "delivered_fraction",
    "duplicates",
    "load_events",
    "load_receipts",
    "lost_acknowledged",
    "namespaces_possible",
    "order_violations",
    "register_checker",
    "run_checkers",
]
