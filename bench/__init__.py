"""learner-bench: ablation suite for LEARNER (Gare et al., arXiv 2411.01144)."""
