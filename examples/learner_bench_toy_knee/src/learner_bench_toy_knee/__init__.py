"""A toy knee X-ray cohort as a learner-bench data source (see README.md)."""
