"""What the day and range pages show of the store, read and shaped off the event loop.

A feed reads one view (a day, or a span of days) of the Parquet store and turns it into the
columns of the plot's ColumnDataSource: :mod:`.day` (a day, live for today) and :mod:`.range`
(weeks and months, from the rollups). :mod:`.contract` is what the page asks of either. Nothing
in this package touches Bokeh models, so the reading and the arithmetic run in worker threads.
"""
