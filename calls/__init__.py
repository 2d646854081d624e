"""The application layer: runs calls (bridges, inbound, IVR), keeps their records and
events, and the jobs that place survey and duty-check calls. See docs/architecture.md."""
