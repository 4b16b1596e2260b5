"""A margin ranking term for learner-bench (see README.md)."""
