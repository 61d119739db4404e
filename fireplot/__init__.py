"""The fireplot command line: the composition root of producers, pipeline and consumers."""
