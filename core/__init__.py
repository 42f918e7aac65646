"""Grove Village's node: everything below the tray, with no Qt in sight."""

__version__ = "0.1.0"
