"""What exists: the ECO catalog and the metrics; nothing here does I/O or imports the rest."""
