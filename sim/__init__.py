"""The simulation domain: pure functions over the catalog and NPC state, no Kafka."""
