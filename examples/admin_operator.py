"""Admin authorisation: only an operator key may change a node (docs/security.md, "Admin authorisation").

A node serves its admin service on its own endpoint, a CURVE server in secure mode. A client with an
ephemeral key reads its status, but may not switch its topology; the operator's key (listed as
``[[operator]]`` in the trust file) may. Run: ``python examples/admin_operator.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fabric import Node, NodeConfig
from fabric.admin import AdminClient, AdminEndpoint, AdminForbidden, AdminService
from fabric.security.keys import KeyPair, save_keypair
from fabric.security.trust import TrustStore


async def main(tmp: Path) -> None:
    node_keys, operator_keys = KeyPair.generate(), KeyPair.generate()
    save_keypair(tmp / "operator", operator_keys)  # what `foundation-node keys generate DIR` writes
    (tmp / "trust.toml").write_text(f'[[member]]\nkey = "{node_keys.public.decode()}"\n\n'
                                    f'[[operator]]\nkey = "{operator_keys.public.decode()}"\nname = "alice"\n')
    async with Node(NodeConfig.local(name="prod-1", topology_cooldown=0)) as node:
        service = AdminService(node)
        service.install()
        endpoint = AdminEndpoint(service, keys=node_keys, trust=TrustStore(tmp / "trust.toml"))
        address = await endpoint.start()  # tcp://127.0.0.1:PORT#<node public key>
        try:
            def operate() -> None:
                with AdminClient(address) as anyone:  # an ephemeral key: read-only
                    print("status as anyone:", anyone.op("status")["name"])
                    try:
                        anyone.op("switch", new="hyparview")
                    except AdminForbidden as exc:
                        print("switch as anyone: refused:", str(exc).split(":")[0])
                with AdminClient(address, key_dir=str(tmp / "operator")) as alice:
                    print("switch as alice:", alice.op("switch", new="hyparview")["overlay"])

            await asyncio.to_thread(operate)
        finally:
            await endpoint.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="adm-") as d:
        asyncio.run(main(Path(d)))
