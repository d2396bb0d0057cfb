"""hv, the command line of hypervisor-mlops. It speaks only the documented HTTP API (../shared/API.md)."""
