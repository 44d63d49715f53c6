"""Everything that touches the outside world: statement parsers, Kafka, the payment core, the warehouse."""
