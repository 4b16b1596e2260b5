"""A Gaussian-kernel similarity for learner-bench (see README.md)."""
