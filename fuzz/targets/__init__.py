"""Fuzzing targets, one module each (the interface: fuzz/engine.py's docstring)."""
