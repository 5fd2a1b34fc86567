"""Pieces every task shares: the command line, run folders, logging, checkpoints."""
