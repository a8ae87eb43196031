"""The rlbench_like tasks, one small module per task or task family (the suite lists them in its TASKS)."""
