"""Network-namespace topologies for NAT tests (Linux, root, iproute2 + iptables)."""
