"""What the tests share: builders, servers and peers they start, paths."""
