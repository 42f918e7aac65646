"""Signed releases: verifying artifacts and the update manifest."""
