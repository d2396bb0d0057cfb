"""The ceiling: the least a submission and a cluster list can cost on this stack (Django, DRF, simplejwt,
PostgreSQL, the coalesced Celery message), served on the service's own tables for bench/ab.py to compare."""
