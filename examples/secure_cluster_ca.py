"""A three-node CURVE cluster on loopback, in secure mode (docs/security.md, "Deployment recipe").

Each node gets its own key pair; one trust file says who may join: nodes a and b by name (the
allowlist), node c through a certificate signed by a cluster CA the trust file lists. A fourth node
whose key nobody trusts cannot join. The same steps work across hosts with the `foundation-node keys`
commands (generate, trust, ca init, sign) and `foundation-node start --keys DIR --trust PATH`.
"""

import tempfile
import threading
from pathlib import Path

import zmq.utils.z85

from fabric import BlockingNode, FabricError, NodeConfig
from fabric.config import SecurityConfig
from fabric.security import ClusterCA, KeyPair, save_certificate, save_keypair


def seed_with_key(node: BlockingNode, public_key: bytes) -> str:
    """A seed in secure mode carries the node's public key (a CURVE client must know it before it
    connects): ``tcp://HOST:PORT#<64 hex digits>``."""
    return f"{node.seed.partition('#')[0]}#{bytes(zmq.utils.z85.decode(public_key)).hex()}"


with tempfile.TemporaryDirectory(prefix="fabric-secure-") as tmp:
    root = Path(tmp)
    keys = {name: KeyPair.generate() for name in ("a", "b", "c", "stranger")}
    for name, kp in keys.items():
        save_keypair(root / name, kp)  # DIR/node.key (mode 0600) and DIR/node.pub

    # node c is admitted by a certificate: the CA signs its key, the certificate sits beside the key
    ca = ClusterCA.generate()
    ca.save(root / "ca")
    save_certificate(root / "c", ca.issue(keys["c"].public, "c", "member", serial=1, valid_for_s=3600))

    trust = root / "trust.toml"
    trust.write_text(
        f'[[member]]\nkey = "{keys["a"].public.decode()}"\nname = "a"\n'
        f'[[member]]\nkey = "{keys["b"].public.decode()}"\nname = "b"\n'
        f'[ca]\nkeys = ["{ca.public_hex}"]\n'
    )

    def secure(name: str) -> BlockingNode:
        return BlockingNode(NodeConfig.local(name=name, security=SecurityConfig(keys=str(root / name), trust=str(trust))))

    nodes = [secure(name) for name in ("a", "b", "c")]
    stranger = secure("stranger")
    for node in nodes:
        node.start()
    try:
        seed = seed_with_key(nodes[0], keys["a"].public)
        for node in nodes:
            node.add_service("whoami", lambda _request, name=node.name: name)
        failures: list[BaseException] = []

        def join(node: BlockingNode) -> None:
            try:
                node.join([seed], min_members=3, timeout=30)  # every node must see all three
            except FabricError as exc:
                failures.append(exc)

        threads = [threading.Thread(target=join, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise SystemExit(f"the cluster did not form: {failures[0]}")
        print("security:", nodes[0].health()["security"])
        print("members:", sorted(m.name for m in nodes[0].alive_members()))
        print("every node sees all three:", all(len(n.alive_members()) == 3 for n in nodes))
        print("node ids are the keys':", all(n.id == keys[n.name].node_id_text for n in nodes))
        for member in sorted(nodes[0].alive_members(), key=lambda m: m.name):
            if member.name != "a":
                print(member.name, "answers", nodes[0].call(member, "whoami"))
        stranger.start()
        try:
            stranger.join([seed], min_members=2, timeout=3)
            print("stranger joined (it should not have)")
        except FabricError as exc:
            print("stranger refused:", type(exc).__name__)
        print("members after the stranger tried:", sorted(m.name for m in nodes[0].alive_members()))
    finally:
        stranger.stop()
        for node in nodes:
            node.stop()
