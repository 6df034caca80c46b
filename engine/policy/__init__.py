"""Pure decision code: no I/O, no clock, randomness only from explicit seeds."""
