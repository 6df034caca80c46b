"""The scheduler: the engine coordinates stages, trials, control, proofs and notifications."""
