"""What leaves the hospital system: the outbox, its runner, the payloads and the destinations that
send them."""
