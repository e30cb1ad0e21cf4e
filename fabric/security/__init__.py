"""Security: node key pairs, self-certifying node ids, the cluster trust store and CURVE/ZAP.

Layering: this package sits beside :mod:`fabric.wire` (it imports nothing above the transport), so the
transport can use it for CURVE and the node for identity checks. See docs/security.md.
"""

from .keys import KeyPair, derive_node_id, load_keypair, load_public_key, save_keypair
from .trust import TrustRole, TrustSnapshot, TrustStore, parse_trust

__all__ = ["KeyPair", "TrustRole", "TrustSnapshot", "TrustStore", "derive_node_id", "load_keypair", "load_public_key",
           "parse_trust", "save_keypair"]
