"""A CURVE cluster on loopback: keys, a trust file, seeds with keys, an outsider refused, a revocation
(run: python examples/secure_cluster.py). See docs/security.md, "CURVE and identity"."""

import asyncio
import tempfile
from pathlib import Path

from fabric import JoinTimeout, Node, NodeConfig, SecurityConfig
from fabric.security import KeyPair, save_keypair


def trust_file(path: Path, members: dict[str, KeyPair], revoked: tuple[KeyPair, ...] = ()) -> None:
    text = "".join(f'[[member]]\nkey = "{kp.public.decode()}"\nname = "{n}"\n' for n, kp in members.items())
    if revoked:
        text += "[revoked]\nkeys = [" + ", ".join(f'"{kp.public.decode()}"' for kp in revoked) + "]\n"
    path.write_text(text)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = {name: KeyPair.generate() for name in ("a", "b", "outsider")}
        for name, kp in keys.items():
            save_keypair(root / name, kp)  # root/<name>/node.key (mode 0600) and node.pub
        trust = root / "trust.toml"
        trust_file(trust, {"a": keys["a"], "b": keys["b"]})  # the outsider's key is not listed

        def config(name: str) -> NodeConfig:
            return NodeConfig.local(name=name, security=SecurityConfig(keys=str(root / name), trust=str(trust),
                                                                       trust_reload_interval=0.2))

        async with Node(config("a")) as a, Node(config("b")) as b, Node(config("outsider")) as outsider:
            print("a runs", a.health()["security"], "with id", a.id, "(derived from its key)")
            seed = f"{a.seed}#{keys['a'].public.decode()}"  # a CURVE client must know the server's key
            await b.join([seed], min_members=2, timeout=30)
            a.add_service("greet", lambda who: f"hello {who}")
            print(await b.call(a.id, "greet", "b"), "(over CURVE)")
            try:
                await outsider.join([seed], min_members=2, timeout=2)
            except JoinTimeout:
                print("outsider refused:", a.stats()["security"]["zap"].get("refused", 0), "handshake(s) denied by ZAP")
            trust_file(trust, {"a": keys["a"]}, revoked=(keys["b"],))  # revoke b
            await a.reload_trust()  # or wait trust_reload_interval
            print("after revoking b, a is linked to", [p.name for p in a.peers()])


asyncio.run(main())
