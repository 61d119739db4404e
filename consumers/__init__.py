"""What reads the store: the Bokeh web app, PNG rendering, exports."""
