from fireplot.cli import run

run()
