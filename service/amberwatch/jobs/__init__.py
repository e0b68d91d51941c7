"""Durable jobs: a procrastinate queue in our PostgreSQL, a bounded worker, and recovery of dead workers' jobs."""
