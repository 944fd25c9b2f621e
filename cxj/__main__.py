"""`python -m cxj` runs the command line."""

from cxj.cli import main

main()
