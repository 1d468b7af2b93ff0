"""A plain module next to the job script."""

OFFSET = 100
