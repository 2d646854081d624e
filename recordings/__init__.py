"""Evidence-grade call recordings: incremental WAV tracks, sealing, crash repair, health."""
