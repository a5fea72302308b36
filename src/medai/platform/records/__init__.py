"""The bottom layer: the database, encryption at rest, private files, the tables and sealed
columns, blobs and leases."""
