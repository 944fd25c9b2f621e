"""`python -m cxj` runs the command line."""

from cxj.cli import main

if __name__ == "__main__":  # not when a spawned helper process imports this module
    main()
