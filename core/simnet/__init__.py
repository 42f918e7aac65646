"""The simulated network: the real services over in-memory streams (see network.py)."""
