"""The village's personas: `model` (pure: fields and bounds), `registry` (SQLite)."""
