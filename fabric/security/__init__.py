"""Security: node key pairs, self-certifying node ids, the cluster trust store and CURVE/ZAP.

Layering: this package sits beside :mod:`fabric.wire` (it imports nothing above the transport), so the
transport can use it for CURVE and the node for identity checks. See docs/security.md.
"""

from .certs import (
           Certificate,
           ClusterCA,
           load_certificate,
           node_certificate,
           save_certificate,
           verify_certificate,
)
from .keys import KeyPair, derive_node_id, load_keypair, load_public_key, save_keypair
from .roles import TrustRole
from .trust import TrustSnapshot, TrustStore, parse_trust

__all__ = ["Certificate", "ClusterCA", "KeyPair", "TrustRole", "TrustSnapshot", "TrustStore", "derive_node_id", "load_keypair", "load_public_key",
           "load_certificate", "node_certificate", "parse_trust", "save_certificate", "save_keypair",
           "verify_certificate"]
