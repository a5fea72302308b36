"""Background work: the job queue and the study jobs it runs."""
