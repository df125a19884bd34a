"""`python -m bigram` (and `torchrun -m bigram`) run the CLI."""

from bigram.cli.app import main

if __name__ == "__main__":
    main()
