"""Moshpit averaging: the pure core (`moshpit`), the wire format (`wire`) and the service."""
