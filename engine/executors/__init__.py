"""Executors run one tool command and report what happened; they know nothing about studies."""
