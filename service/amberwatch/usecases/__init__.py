"""Use cases: the only layer the web API and the command line call (scenes, runs, tracking, jobs, keys)."""
