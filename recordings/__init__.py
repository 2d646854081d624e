"""Evidence-grade call recordings: incremental WAV writing, finalisation, crash repair, health checks."""
