"""The archive worker (``fireplot worker``): Kafka records into the Parquet store, exactly once in effect.

Read it as the records flow:

- ``decoders``: a Kafka record and how it becomes events or a dead letter
  (events topic: Arrow batches; raw-lines topic: plain or JSON-wrapped lines);
- ``sink``: batches of records into durable Parquet flushes, dead-letter files, counters;
- ``topics``: which topics each sink reads (topic patterns, MirrorMaker 2 copies);
- ``metrics``: the sinks' counters as Prometheus metrics, read at scrape time;
- ``raw_feed``: the raw-lines topics read in batches with aiokafka beside faust
  (fetch thousands of records, flush, commit);
- ``app``: the faust wiring (the events agent, the raw feed, timers,
  ``/metrics``, ``/ready``) and ``run``.

Only ``app`` and ``raw_feed`` import faust and aiokafka, so ``fireplot
rebuild``, the tests and the benchmarks use the sink without them.
"""
