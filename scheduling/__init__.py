"""The pure core of scheduling: standard library only, importable without Django."""
