"""The source of truth: events, the journal file and its checkpoint, the one reducer."""
