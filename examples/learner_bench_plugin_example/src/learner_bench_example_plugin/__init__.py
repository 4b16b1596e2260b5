"""Example learner-bench backbone plugin: a small 3D CNN registered as ``example_c3d``."""
