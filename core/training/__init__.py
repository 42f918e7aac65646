"""Opt-in collaborative training: the demo projects and the training service."""
