"""What runs at the edge and writes to Kafka: shipping, tailing, the demo."""
