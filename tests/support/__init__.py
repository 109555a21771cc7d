"""Helpers shared by the test folders (not collected: no test_ modules here)."""
