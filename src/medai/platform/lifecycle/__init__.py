"""The hospital's models over their lives: the registry (register, shadow, promote, roll back,
retire), the watcher that hot-swaps every process to the active model, and (as they land)
site validation, shadow comparison, labels from signatures and monitoring."""
