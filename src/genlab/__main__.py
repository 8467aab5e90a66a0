from genlab.cli import run

run()
