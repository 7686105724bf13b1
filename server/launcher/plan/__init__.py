"""The planner: what a model needs in memory on a platform, and which serve flags fit (`launcher plan`)."""
