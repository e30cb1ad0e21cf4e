"""Fault injection on real processes: three hosts under load, one ``kill -9`` and a restart with the same
identity, then the histories are checked for lost acknowledged writes and duplicates.

Runs in network namespaces when run as root with ``ip`` and ``nft`` installed, else on 127.0.0.x
(loopback mode). The whole suite of scenarios is ``python -m fabric.testing.chaos`` (docs/chaos.md).
"""

from __future__ import annotations

import time

from fabric.testing.chaos import Cluster, default_network, duplicates, lost_acknowledged


def main() -> None:
    with Cluster(3, network=default_network()) as cluster:
        print(f"mode: {cluster.mode}")
        cluster.start()
        print(f"formed in {cluster.wait_converged(60)}s")
        cluster.workload(10)  # operations per second per host
        time.sleep(2)
        cluster.kill(2)
        print(f"kill -9 h2: the others see it gone after {cluster.wait_converged(30, ['h0', 'h1'])}s")
        cluster.restart(2)
        print(f"restarted h2 (same id and ports): back after {cluster.wait_converged(60, cluster.names)}s")
        time.sleep(2)
        cluster.workload(0)
        time.sleep(cluster.call_timeout + 0.5)  # calls in flight complete
        events, receipts = cluster.histories()
    acked = sum(1 for e in events if e.type == "ok" and e.kind == "write")
    lost = lost_acknowledged(events, receipts)
    print(f"acknowledged writes {acked}, lost {len(lost)}, duplicates {len(duplicates(receipts))}")


if __name__ == "__main__":
    main()
