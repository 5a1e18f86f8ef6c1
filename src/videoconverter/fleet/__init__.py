"""Worker processes: the supervisor that runs and restarts them, and the policy that sizes the pool."""
