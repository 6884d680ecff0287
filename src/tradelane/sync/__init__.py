"""The durable sync engine: jobs in the database, leases, retries, dead letters, rate limits, schedules."""
